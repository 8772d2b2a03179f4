"""What ``launch.py --mode=`` runs: each mode is one module here, whose
function (config, workdir, mesh=None) builds on
``cm_jax.experiment.Experiment``."""

from cm_jax.modes import edit, evaluate, sample, search, train

MODES = {"train": train.train, "sample": sample.sample,
         "eval": evaluate.evaluate, "edit": edit.edit, "search": search.search}
