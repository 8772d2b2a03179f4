"""The diffusion teacher φ that consistency distillation (CM Alg. 2, LCM
Alg. 1) distils, and the trained LCM that LCF (LCM Alg. 4) fine-tunes.

A teacher is any cm_jax run trained with ``method=diffusion``; ``config.teacher.workdir``
names it, and its latest checkpoint's EMA weights are used. The teacher's
network is rebuilt from the config stored in that checkpoint, so the student
may have another architecture, unless it starts from the teacher's weights
(``teacher.init_student``, as the CM paper does for CD). For LCF the same
field names a run of method=lcd or lcf, whose EMA weights the student starts
from.
"""

import os

from flax import traverse_util

from cm_jax import checkpoint, processes

PROCESS_FIELDS = ("process", "vp", "diffusion", "trigflow")
# Of a group, the fields the teacher's network depends on (absent: all).
# EDM's D(x; σ) and TrigFlow's F read σ_d alone; σ_min, σ_max and ρ set the
# grids and samplers, which are the student's own (ECT samples with
# ECMPrecond's σ_min = 0.003 from an EDM run that used 0.002).
NETWORK_FIELDS = {"diffusion": ("sigma_data",)}


def load_teacher(config, needs, mesh, example_shape):
  """(teacher model, its EMA params replicated on ``mesh``, meta) of the
  run ``needs.run_field`` names (teacher.workdir or init.workdir), a run
  of one of the methods ``needs.teacher`` (the objective's ``Needs``)."""
  field = needs.run_field
  workdir = run_workdir(config, needs)
  if not workdir:
    raise ValueError(f"method={config.method} needs {needs.teacher_what}: "
                     f"set --config.{field}=DIR (a run of method="
                     f"{' or '.join(needs.teacher)}).")
  manager, meta = checkpoint.read_run(workdir, field, needs.teacher,
                                      "the teacher")
  if needs.same_process_as_teacher:
    _check_same_process(meta["config"], config, workdir)
  _check_same_latents(meta["config"].get("data", {}), config.data, workdir)
  return (*checkpoint.restore_network(manager, meta, mesh, example_shape),
          meta)


def run_workdir(config, needs):
  """The workdir of the teacher or starting run (``needs.run_field``); a
  one-line error when the other field, which this method does not read, is
  set instead."""
  for field in ("teacher.workdir", "init.workdir"):
    group = field.split(".")[0]
    if config[group].workdir and field != (needs.run_field if needs.teacher
                                           else None):
      fix = (f"set --config.{needs.run_field}={config[group].workdir} "
             "instead" if needs.teacher else "leave it empty")
      raise ValueError(f"method={config.method} reads no {field} (teacher."
                       "workdir: the run CD, LCD, sCD and TCM read; init.workdir:"
                       " the run ECT, sCT and LCF start from); " + fix + ".")
  return config[needs.run_field.split(".")[0]].workdir


def _latent_space(data):
  """Which autoencoder's latents ``data`` (a data config) holds; None for
  pixels (and other data)."""
  if data.get("source") != "latents":
    return None
  return data.get("autoencoder") or os.path.abspath(data.get("ae_workdir", ""))


def _check_same_latents(saved_data, data, workdir):
  """A teacher (or LCM) and its student must share the latent space."""
  saved, now = _latent_space(saved_data), _latent_space(data)
  if saved != now:
    raise ValueError(f"{workdir} was trained on {saved or 'pixels'}"
                     f"{' latents' if saved else ''}, this run on "
                     f"{now or 'pixels'}{' latents' if now else ''}; set "
                     "--config.data.source / data.ae_workdir to the teacher's.")


def _check_same_process(saved_config, config, workdir):
  """LCD, LCF, ECT and sCM must run on the process (α, σ and, for TrigFlow,
  c_noise) their teacher or starting run used. One exception: a VE EDM run
  is a TrigFlow diffusion model read with trigflow.network=edm (F =
  −net(x_in, ¼·ln(σ_d·tan t)); ``processes.TrigFlow``), so sCD and sCT may
  start from it when σ_d matches (``NETWORK_FIELDS``)."""
  saved = {k: saved_config.get(k, "ve" if k == "process" else {})
           for k in PROCESS_FIELDS}
  saved_name = saved["process"]
  # The config groups that define the process's (α, σ) and network input.
  groups = processes.CONFIG_GROUPS.get(saved_name, ("diffusion",))
  if saved_name == "ve" and config.process == "trigflow":
    if not processes.make_process(config).reads_ve_networks:
      raise ValueError(f"{workdir} is a VE run (EDM's network); a TrigFlow "
                       "run reads it only as trigflow.network=edm: set "
                       "--config.trigflow.network=edm.")
  elif saved_name != config.process:
    raise ValueError(f"{workdir} was trained with process={saved_name!r}, this "
                     f"run has process={config.process!r}; set "
                     f"--config.process={saved_name}.")
  for group in groups:
    diff = checkpoint.config_differences(saved, config, group)
    if group in NETWORK_FIELDS:
      diff = [d for d in diff if d.split(":")[0].split(".")[1]
              in NETWORK_FIELDS[group]]
    if diff:
      raise ValueError(f"{workdir} was trained with another noise process "
                       f"({', '.join(diff)}); match config.{group} to it.")


def check_student_matches(teacher_meta, config, may_add=()):
  """The student can start from the teacher's weights only with its network,
  up to the fields ``may_add`` (``Needs.student_may_add``; LCD: LCM's added
  w input, which starts as a no-op)."""
  diff = checkpoint.config_differences(teacher_meta["config"], config, "model")
  diff = [d for d in diff
          if not any(d.startswith(f"model.{f}:") for f in may_add)]
  if diff:
    raise ValueError(
        "teacher.init_student=True needs the teacher's network, but the "
        f"configs differ ({', '.join(diff)}); match config.model to the "
        "teacher or set --config.teacher.init_student=False.")


def merge_params(student, teacher):
  """The student's parameter tree with every leaf the teacher also has taken
  from the teacher. LCM: the student is the teacher plus a zero-initialised
  w projection, so at the start it *is* the teacher at every w."""
  flat_student = traverse_util.flatten_dict(student)
  flat_teacher = traverse_util.flatten_dict(teacher)
  missing = sorted("/".join(k) for k in set(flat_teacher) - set(flat_student))
  if missing:
    raise ValueError(f"The student lacks teacher parameters {missing[:3]}; "
                     "match config.model to the teacher.")
  merged = {k: flat_teacher.get(k, v) for k, v in flat_student.items()}
  return traverse_util.unflatten_dict(merged)


def student_init(config, needs, student_params, teacher_params,
                 teacher_meta):
  """The parameters a fresh student starts from, or None (random init), as
  ``needs.init_from_teacher`` says: "option" (CD, LCD) with
  ``teacher.init_student`` starts from φ (CM, LCM); "always" (LCF) from the
  trained LCM (LCM Alg. 4)."""
  if teacher_params is None or needs.init_from_teacher == "never":
    return None
  if needs.init_from_teacher == "always" or config.teacher.init_student:
    check_student_matches(teacher_meta, config, needs.student_may_add)
    return merge_params(student_params, teacher_params)
  return None
