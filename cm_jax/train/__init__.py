"""Training: state, objective, the jitted step and the loop."""
