"""Named choices: every config string that picks a part (a method, a model, a
metric, a solver, a sampler, a data source, ...) is looked up here, in an
explicit dict, and an unknown name fails in one line that lists the valid
ones and names the field to set."""


def lookup(table, name, field, flag=None):
  """``table[name]``, or a one-line ValueError naming ``field`` (the config
  field, e.g. "loss.metric", or the ``flag`` to set) and the valid names."""
  if name not in table:
    raise ValueError(f"Unknown {field}={name!r}; valid: "
                     f"{', '.join(sorted(map(str, table)))} "
                     f"(set {flag or '--config.' + field}=...).")
  return table[name]
