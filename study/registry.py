"""Every configuration of the study, in one place: what each one is, the CLI calls that make it, and the sets
(presets and budgets) that list them. The engine (study/engine.py) turns a set and its seeds into tasks; summaries,
figures and results/budget.csv name configurations from here.

A configuration is a list of steps; a step is one output file and the one call of an existing CLI that writes it
(checkpoints are written atomically, so an output on disk is a finished step). Inputs are other steps' outputs:
the engine finds the order from them.
"""
import glob
from dataclasses import dataclass

PUBLISHED = "pretrained:"  # argv token prefix: the engine replaces pretrained:resnet56 by the verified .th file
ENGINES = ("onnxruntime", "openvino")


@dataclass(frozen=True)
class Step:
    out: str
    argv: tuple

    def __post_init__(self):
        object.__setattr__(self, "argv", tuple(str(a) for a in self.argv))


@dataclass(frozen=True)
class Config:
    name: str          # stable within its set and seed: the task id is SET/sSEED/NAME
    label: str         # what it is, for plans and tables
    steps: tuple       # the last step's output is the configuration's checkpoint
    measured: bool = True  # benchmarked by the set's benchmark (inputs such as the unpruned parent are not)

    @property
    def out(self):
        return self.steps[-1].out


@dataclass(frozen=True)
class Bench:
    """A set's one benchmark run: every measured configuration of a seed against that seed's baseline."""
    csv: str                 # file name under the set's results folder
    baseline: str            # configuration name of the reference ("x eager fp32", top-1 change)
    backends: str
    baseline_backends: str = ""
    options: tuple = ()
    quiet: bool = True       # --require-quiet (the smoke preset's tiny models are not timed for their numbers)
    model_files: tuple = ()  # files other tools made, in the run folder, measured beside the checkpoints


@dataclass
class Where:
    """Where a set's files go and how its steps run: the root of the run folders, the data, threads per task."""
    runs: str = "runs"
    data: str = ""
    threads: int = 1
    cpu_bf16: bool = False


@dataclass(frozen=True)
class StudySet:
    name: str
    describe: str
    folder: object           # folder(where, seed) -> run folder of one seed
    configs: object          # configs(where, seed) -> [Config]
    seeds: tuple = (0,)      # the default seeds; others allowed only where `seeded`
    seeded: bool = False
    bench: Bench = None
    reports: object = None   # reports(where, seeds, csv) -> [Report]: the tables `report` writes
    bench_seeds: tuple = None  # the seeds `bench` measures by default (None: the set's seeds)


@dataclass(frozen=True)
class Report:
    """One table of `python -m study report`: MODULE INPUTS... OPTIONS... --out RESULTS/OUT. With inputs, it runs
    only when some of them exist (those are passed); inputs=None: a table of the benchmark CSV alone."""
    module: str
    inputs: tuple
    options: tuple
    out: str


def existing(*patterns):
    """The files matching the glob patterns, in order, each once."""
    found = []
    for pattern in patterns:
        found += [f for f in sorted(glob.glob(pattern)) if f not in found]
    return tuple(found)


def step(out, *argv):
    return Step(out, ("python", "-m", *argv, "--out", out))


# ---------------------------------------------------------------------------------------------------------------
# The published weights (akamaster/pytorch_resnet_cifar10), converted once into the project's format.

def published(folder, depth):
    return step(f"{folder}/r{depth}.pt", "models.convert", f"{PUBLISHED}resnet{depth}")


def int8_configs(run, parents, where, seed, calib=None, engines=ENGINES):
    """One static-int8 model per parent and engine, calibrated on training images drawn with the seed."""
    configs = []
    for parent in parents:
        for engine in engines:
            out = f"{run}/{parent.out[len(run) + 1:-3]}-int8-{engine}.pt"
            argv = ["quantization.ptq", parent.out, "--engine", engine, "--data-dir", where.data,
                    "--threads", where.threads]
            argv += ["--calib-images", calib] if calib else ["--seed", seed]
            configs.append(Config(f"{parent.name}-int8-{engine}", f"{parent.label} -> int8 {engine}",
                                  (step(out, *argv),)))
    return configs


# ---------------------------------------------------------------------------------------------------------------
# The equal fine-tune: every model, the baseline included, `--recipe quick --epochs E` on all 50,000 JPEG-copy
# training images from the same starting points. SGD lr 0.01, momentum 0.9, cosine to zero, wd 1e-4, batch 128.
# Li et al. retrain at a constant lr 0.001 for 40 epochs, but their parents already fit the data; ours start from
# weights trained on the lossless CIFAR-10 (the ResNet-56: 92.6 on the lossless test[:1000], 83.2 on the JPEG-copy
# test), and the 2-epoch runs show lr 0.01 recovering most of that. Changing only the epochs makes each budget
# differ from its neighbours by the budget alone. The seed sets data order, augmentation and calibration images.

EQUAL_ITEMS = {  # item -> (checkpoint name, label): the configurations of the budget sets
    "base": ("r56-ft", "baseline ResNet-56"),
    "l1b": ("r56-B-ft", "L1 filter pruning, Li et al. B"),
    "l1r16": ("r56-s0-50-75r16-ft", "L1 filter pruning, stages 0/50/75%, widths x16"),
    "l1u50": ("r56-u50r8-ft", "L1 filter pruning, uniform 50%, widths x8"),
    "fisher72": ("r56-fisher72", "Fisher pruning at B's MACs"),
    "fisher50": ("r56-fisher50", "Fisher pruning at the uniform 50% MACs"),
    "fisher72r16": ("r56-fisher72r16", "Fisher pruning at B's MACs, widths x16"),
    "lowrank": ("r56-spatial-f65-m16-ft", "low-rank spatial, 65% MACs, ranks x16"),
    "w90": ("r56-p90", "weight pruning 90%, gradual"),
    "w90kd": ("r56-p90-kd", "weight pruning 90%, gradual, KD"),
    "tp": ("r56-tp-ft", "Torch-Pruning (DepGraph, global) at half the MACs, imported"),
    "kd32": ("r32-kd", "ResNet-32 student, Hinton KD"),
    "kd": ("r20-kd", "ResNet-20 student, Hinton KD"),
    "nt32": ("r32-noteacher", "ResNet-32, no teacher"),
    "nt": ("r20-noteacher", "ResNet-20, no teacher"),
    "fitnets": ("r20-fitnet", "ResNet-20, two-stage FitNets"),
}
FISHER_MACS = {"fisher72": ("0.724",), "fisher50": ("0.502",), "fisher72r16": ("0.724", "--round-to", "16")}


def equal_finetune_folder(epochs):
    return lambda where, seed: f"{where.runs}/ft-e{epochs}" + (f"-s{seed}" if seed else "")


def equal_finetune(epochs, items, int8_of=None, lr=None, weight_steps=4):
    """configs(where, seed) of the equal fine-tune at EPOCHS for ITEMS, then the int8 models of int8_of (default:
    every item's checkpoint), for ONNX Runtime and OpenVINO."""
    def configs(where, seed):
        run, quick = equal_finetune_folder(epochs)(where, seed), f"{where.runs}/study-quick/base"
        r56, r20 = f"{quick}/r56.pt", f"{quick}/r20.pt"
        ft = ["--recipe", "quick", "--epochs", epochs, *(["--lr", lr] if lr else []), "--seed", seed,
              "--data-dir", where.data, "--threads", where.threads, "--no-progress"]
        ft += ["--cpu-bf16"] if where.cpu_bf16 else []
        out = {}

        def add(item, *steps):
            name, label = EQUAL_ITEMS[item]
            assert steps[-1].out == f"{run}/{name}.pt", (item, steps[-1].out)
            out[item] = Config(item, label, steps)

        inputs = [Config("r56", "published ResNet-56", (published(quick, 56),), measured=False),
                  Config("r20", "published ResNet-20", (published(quick, 20),), measured=False)]
        teacher = f"{run}/r56-ft.pt"
        for item in items:
            if item == "base":
                add(item, step(teacher, "train", r56, *ft))
            elif item in ("l1b", "l1r16", "l1u50"):
                pruned, args = {"l1b": ("r56-B", ["--variant", "B"]),
                                "l1r16": ("r56-s0-50-75r16", ["--ratios", "0,0.5,0.75", "--round-to", "16"]),
                                "l1u50": ("r56-u50r8", ["--ratio", "0.5", "--round-to", "8"])}[item]
                add(item, step(f"{run}/{pruned}.pt", "pruning_l1.prune", r56, *args),
                    step(f"{run}/{pruned}-ft.pt", "train", f"{run}/{pruned}.pt", *ft))
            elif item in FISHER_MACS:
                add(item, step(f"{run}/r56-{item}.pt", "pruning_fisher.prune", r56, "--target-macs",
                               *FISHER_MACS[item], *ft))
            elif item == "lowrank":
                add(item, step(f"{run}/r56-spatial-f65-m16.pt", "lowrank.decompose", r56, "--scheme", "spatial",
                               "--target-flops", "0.65", "--multiple", "16"),
                    step(f"{run}/r56-spatial-f65-m16-ft.pt", "train", f"{run}/r56-spatial-f65-m16.pt", *ft))
            elif item in ("w90", "w90kd"):
                kd = ["--teacher", r56, "--temperature", "4", "--alpha", "0.9"] if item == "w90kd" else []
                add(item, step(f"{run}/{EQUAL_ITEMS[item][0]}.pt", "pruning_weight.prune", r56, "--percent", "90",
                               "--finetune", "--steps", weight_steps, *kd, *ft))
            elif item == "tp":  # Torch-Pruning's DepGraph pruning, imported (docs/measure-your-model.md)
                add(item, Step(f"{run}/r56-tp.pth", ("python", "-m", "scripts.external_models", "torch-pruning", r56,
                                                     "--macs", "0.5", "--out", f"{run}/r56-tp")),
                    step(f"{run}/r56-tp.pt", "models.convert", f"{run}/r56-tp.pth", "--like", r56,
                         "--label", "torch-pruning"),
                    step(f"{run}/r56-tp-ft.pt", "train", f"{run}/r56-tp.pt", *ft))
            else:  # students of the equally fine-tuned ResNet-56; the no-teacher twin: same init, data, schedule
                arch = "r32" if item.endswith("32") else "r20"
                student = f"{run}/r32.pt" if arch == "r32" else r20
                if arch == "r32" and "r32" not in [c.name for c in inputs]:
                    inputs.append(Config("r32", "published ResNet-32", (published(run, 32),), measured=False))
                name = f"{run}/{EQUAL_ITEMS[item][0]}.pt"
                if item.startswith("kd"):
                    s = step(name, "distillation.train", student, "--teacher", teacher, "--temperature", "4",
                             "--alpha", "0.5", *ft)
                elif item.startswith("nt"):
                    s = step(name, "distillation.train", student, "--teacher", teacher, "--no-teacher", *ft)
                else:
                    s = step(name, "fitnets.train", student, "--teacher", teacher, *ft)
                add(item, s)
        made = [out[i] for i in items]
        parents = made if int8_of is None else [out[i] for i in int8_of if i in out]
        return inputs + made + int8_configs(run, parents, where, seed)
    return configs


EQUAL_BENCH = dict(backends="onnx,openvino", baseline_backends="eager", baseline="base",
                   options=("--batch-sizes", "1,64", "--repeat", "3", "--slices", "8", "--min-seconds", "1"))
# The 32-epoch set: the configurations the answer turns on. The 8-epoch set: every configuration.
E32_ITEMS = ("base", "kd", "kd32", "nt", "l1b", "l1r16", "lowrank")
E8_ITEMS = ("base", "kd", "kd32", "fitnets", "nt", "w90kd", "l1b", "l1r16", "lowrank", "fisher72", "nt32", "tp")
# The 2-epoch seed repeats: every item a headline claim rested on; int8 of the baseline, students and low-rank model.
E2_ITEMS = ("base", "l1b", "l1r16", "lowrank", "w90kd", "kd", "kd32", "nt", "nt32", "fitnets")


# ---------------------------------------------------------------------------------------------------------------
# The presets of the whole study: baseline -> every method -> fine-tuning -> stacked compression -> int8.

def preset_folder(name):
    return lambda where, seed: f"{where.runs}/study-{name}"


def study_preset(preset):
    """configs(where, seed) of the smoke, quick or paper preset."""
    def configs(where, seed):
        run = preset_folder(preset)(where, seed)
        base, data, threads = f"{run}/base", where.data, where.threads
        common = ["--data-dir", data, "--threads", threads, "--no-progress"]
        test = ["--test-dir", data, "--threads", threads]
        out = []
        if preset == "smoke":  # synthetic data, a ResNet-20 "teacher" and a ResNet-8 student, one epoch each
            ft = ["--epochs", "1", "--lr", "0.02", "--schedule", "cosine", "--batch-size", "64"]
            student_ft = ["--epochs", "1", "--lr", "0.05", "--schedule", "cosine", "--batch-size", "64"]
            student = "resnet8"
            l1 = [("u50r8", ["--ratio", "0.5", "--round-to", "8"])]
            fisher = [("f72", ["--target-macs", "0.724"])]
            percents, calib, engines = ["90"], "64", ENGINES
            lowrank = [("svd", ["--scheme", "svd", "--target-flops", "0.5", "--multiple", "8"])]
            out.append(Config("base", "ResNet-20 trained from scratch (synthetic data)",
                              (step(f"{base}/r56.pt", "train", "resnet20", *common, "--epochs", "2", "--lr", "0.05",
                                    "--batch-size", "64"),)))
        else:
            l1 = [("A", ["--variant", "A"]), ("B", ["--variant", "B"]),
                  ("u50r8", ["--ratio", "0.5", "--round-to", "8"])]
            fisher = [("f72", ["--target-macs", "0.724"]), ("f50", ["--target-macs", "0.502"]),
                      ("f72r16", ["--target-macs", "0.724", "--round-to", "16"])]
            percents, calib = ["30", "50", "70", "90", "95"], "1024"
            # The three schemes at equal MACs, and the spatial scheme with SIMD-friendly ranks at 70% of the MACs.
            lowrank = [(s, ["--scheme", s, "--target-flops", "0.5", "--multiple", "8"]) for s in
                       ("svd", "spatial", "tucker2")]
            lowrank += [("spatial-f7-m16", ["--scheme", "spatial", "--target-flops", "0.7", "--multiple", "16"])]
            if preset == "quick":  # short fine-tunes on 10,000 JPEG-copy images; students from the published ResNet-20
                ft = student_ft = ["--recipe", "quick", "--subset", "10000"]
                engines = ENGINES
                student = f"{base}/r20.pt"
                out += [Config("r56", "published ResNet-56", (published(base, 56),)),
                        Config("r20", "published ResNet-20", (published(base, 20),), measured=False)]
            else:  # paper: the papers' schedules (160-epoch baseline, 40-epoch fine-tunes, 200-epoch students)
                ft, student_ft, student = ["--recipe", "finetune"], ["--recipe", "student"], "resnet20"
                engines = ENGINES + ("pt2e",)
                out.append(Config("base", "ResNet-56 trained from scratch",
                                  (step(f"{base}/r56.pt", "train", "resnet56", *common, "--recipe", "scratch"),)))
        r56, teacher = f"{base}/r56.pt", f"{base}/r56-ft.pt"
        # The equally fine-tuned baseline: every method below gets the same fine-tune, and is compared with it.
        out.append(Config("r56-ft", "baseline, fine-tuned", (step(teacher, "train", r56, *ft, *common),)))
        for name, args in l1:
            pruned = f"{run}/l1/r56-{name}.pt"
            out.append(Config(f"l1-{name}", f"L1 filter pruning {name}",
                              (step(pruned, "pruning_l1.prune", r56, *args, *test),
                               step(f"{run}/l1/r56-{name}-ft.pt", "train", pruned, *ft, *common))))
        for name, args in fisher:
            out.append(Config(f"fisher-{name}", f"Fisher pruning {name}",
                              (step(f"{run}/fisher/r56-{name}.pt", "pruning_fisher.prune", r56, *args, *ft,
                                    *common),)))
        for p in percents:  # gradual magnitude pruning inside the masked fine-tune
            out.append(Config(f"weight-p{p}", f"weight pruning {p}%",
                              (step(f"{run}/weight/r56-p{p}.pt", "pruning_weight.prune", r56, "--percent", p,
                                    "--finetune", "--steps", "4", *ft, *common),)))
        for name, args in lowrank:
            factored = f"{run}/lowrank/r56-{name}.pt"
            out.append(Config(f"lowrank-{name}", f"low-rank {name}",
                              (step(factored, "lowrank.decompose", r56, *args, *test),
                               step(f"{run}/lowrank/r56-{name}-ft.pt", "train", factored, *ft, *common))))
        s = f"{run}/distill"
        students = [("noteacher", "distillation.train", ["--no-teacher"]),
                    ("kd", "distillation.train", ["--temperature", "4", "--alpha", "0.5"]),
                    ("fitnet", "fitnets.train", []), ("fitnet1", "fitnets.train", ["--single-stage"])]
        for name, module, args in students:
            out.append(Config(f"student-{name}", f"student, {name}",
                              (step(f"{s}/student-{name}.pt", module, student, "--teacher", teacher, *args,
                                    *student_ft, *common),)))
        # stacked: L1 (SIMD-friendly widths) -> KD fine-tune from the unpruned teacher -> int8; student -> int8
        stacked = Config("stack-u50r8-kd", "L1 uniform 50% x8, KD fine-tune",
                         (step(f"{run}/stack/r56-u50r8-kd.pt", "distillation.train", f"{run}/l1/r56-u50r8.pt",
                               "--teacher", teacher, "--temperature", "4", "--alpha", "0.5", *ft, *common),))
        out.append(stacked)
        by_name = {c.name: c for c in out}
        for parent, stem in ((by_name["r56-ft"], f"{run}/quant/r56-ft-int8"),
                             (stacked, f"{run}/stack/r56-u50r8-kd-int8"),
                             (by_name["student-kd"], f"{run}/stack/student-kd-int8")):
            for engine in engines:
                out.append(Config(f"{parent.name}-int8-{engine}", f"{parent.label} -> int8 {engine}",
                                  (step(f"{stem}-{engine}.pt", "quantization.ptq", parent.out, "--engine", engine,
                                        "--calib-images", calib, "--data-dir", data, "--threads", threads),)))
        if preset == "smoke":  # the data itself is the smoke preset's first step
            out.insert(0, Config("data", "synthetic CIFAR-10 layout (640 train, 128 test)",
                                 (Step(f"{data}/cifar-10-batches-py/test_batch",
                                       ("python", "-m", "common.data", data, "--train", "640", "--test", "128")),),
                                 measured=False))
        return out
    return configs


def taste(where, seed):
    """A first answer in minutes: every data-free compression of the published ResNet-56, no training."""
    run, base = f"{where.runs}/study-taste", f"{where.runs}/study-taste/base"
    t, r56, threads = f"{run}/taste", f"{base}/r56.pt", where.threads
    engine = fastest_int8_engine()
    return [Config("r56", "published ResNet-56", (published(base, 56),)),
            Config("l1-A", "L1 filter pruning A", (step(f"{t}/r56-l1-A.pt", "pruning_l1.prune", r56, "--variant", "A",
                                                        "--threads", threads),)),
            Config("l1-B", "L1 filter pruning B", (step(f"{t}/r56-l1-B.pt", "pruning_l1.prune", r56, "--variant", "B",
                                                        "--threads", threads),)),
            Config("weight-p90", "weight pruning 90%, one shot",
                   (step(f"{t}/r56-p90.pt", "pruning_weight.prune", r56, "--percent", "90"),)),
            Config("lowrank-spatial-f7-m16", "low-rank spatial 70% x16",
                   (step(f"{t}/r56-spatial-f7-m16.pt", "lowrank.decompose", r56, "--scheme", "spatial",
                         "--target-flops", "0.7", "--multiple", "16", "--threads", threads),)),
            Config(f"r56-int8-{engine}", f"int8 {engine}",
                   (step(f"{t}/r56-int8-{engine}.pt", "quantization.ptq", r56, "--engine", engine, "--calib-images",
                         "1024", "--data-dir", where.data, "--threads", threads),))]


def fastest_int8_engine():
    from benchmark.runners import available_backends
    return "openvino" if "openvino" in available_backends() else "onnxruntime"


def students(where, seed):
    """ResNet-10 (14 layers) and ResNet-1 (8 layers) from scratch: the no-teacher twin, Hinton KD (T 4, alpha 0.9)
    and two-stage FitNets from the quick study's fine-tuned ResNet-56, same init, data order and schedule per seed;
    the ResNet-1 on seed 0 only; int8 of seed 0's KD and FitNets students on both engines."""
    # 4 cosine epochs over all 50,000 images at lr 0.1, batch 128, wd 5e-4 as in the KD-Zoo students: a ResNet-10
    # epoch takes ~1 min on one AMX core in bf16, where the teacher's forward pass costs about what the step does.
    run, base = f"{where.runs}/study-students/scratch-s{seed}", f"{where.runs}/study-students/base"
    teacher = f"{base}/r56-ft.pt"
    sched = ["--data-dir", where.data, "--subset", "50000", "--epochs", "4", "--lr", "0.1", "--batch-size", "128",
             "--schedule", "cosine", "--weight-decay", "5e-4", "--seed", seed, "--threads", where.threads,
             "--no-progress", *(["--cpu-bf16"] if where.cpu_bf16 else [])]
    out = [Config("r56", "published ResNet-56", (published(base, 56),), measured=False),
           Config("r56-ft", "the published ResNet-56 fine-tuned as in the quick study (the teacher)",
                  (step(teacher, "train", f"{base}/r56.pt", "--recipe", "quick", "--subset", "10000",
                        "--data-dir", where.data, "--threads", where.threads, "--no-progress"),))]
    made = []
    for arch in ("resnet10", "resnet1") if seed == 0 else ("resnet10",):
        s = f"r{arch[6:]}"
        for name, module, args in (("noteacher", "distillation.train", ["--no-teacher"]),
                                   ("kd-T4", "distillation.train", ["--temperature", "4", "--alpha", "0.9"]),
                                   ("fitnet-T4", "fitnets.train", ["--temperature", "4", "--alpha", "0.9"])):
            made.append(Config(f"{s}-{name}", f"{arch}, {name}",
                               (step(f"{run}/{s}-{name}-s50000-e4.pt", module, arch, "--teacher", teacher, *args,
                                     *sched),)))
    out += made
    if seed == 0:
        out += int8_configs(run, [c for c in made if "-noteacher" not in c.name], where, seed, calib="1024")
    return out


# ---------------------------------------------------------------------------------------------------------------
# The sets: presets of the whole study and the budget sets of the equal fine-tune.

QUICK_BENCH = ("--batch-sizes", "1,64", "--repeat", "3", "--slices", "8", "--min-seconds", "1")


def preset_reports(preset):
    """Each method's table of a preset: a query over the checkpoints' metadata (and the benchmark CSV)."""
    def reports(where, seeds, csv):
        run = preset_folder(preset)(where, 0)
        speed = ("--benchmark", csv, "--speed-batch", "16" if preset == "smoke" else "64")
        base = ("--baseline", f"{run}/base/r56-ft.pt")
        return [Report("pruning_l1.accuracy_table", existing(f"{run}/l1/r56-*.pt"), base, "reports/l1_accuracy.md"),
                Report("pruning_fisher.report", existing(f"{run}/fisher/r56-*.pt", f"{run}/l1/r56-*-ft.pt"),
                       base + speed, "reports/fisher_vs_l1"),
                Report("pruning_weight.report", existing(f"{run}/weight/r56-p*.pt"), base, "reports/weight_pruning"),
                Report("lowrank.report", existing(f"{run}/lowrank/r56-*.pt"), base, "reports/lowrank"),
                Report("distillation.report", existing(f"{run}/distill/student-*.pt"),
                       ("--teacher", f"{run}/base/r56-ft.pt") + speed, "reports/distillation")]
    return reports


def students_reports(where, seeds, csv):
    """The students of every seed in one table: the seeds of one configuration pair up by file name."""
    made = [c.out for s in seeds for c in students(where, s) if c.name[:3] in ("r10", "r1-") and "-int8-" not in c.name]
    teacher = f"{where.runs}/study-students/base/r56-ft.pt"
    return [Report("distillation.report", existing(*made), ("--teacher", teacher, "--benchmark", csv,
                                                            "--speed-batch", "64"), "reports/distillation_scratch")]


def seeds_reports(epochs):
    """The seeds table (mean +- sd, paired intervals) and the students against their no-teacher twins, by seed."""
    def reports(where, seeds, csv):
        runs = [equal_finetune_folder(epochs)(where, s) for s in seeds]
        students = existing(*(f"{r}/r{d}-{k}.pt" for r in runs for d in ("20", "32") for k in ("kd", "noteacher")),
                            *(f"{r}/r20-fitnet.pt" for r in runs))
        return [Report("plots.seeds", None, ("--results", csv, "--title",
                                            f"Seed repeats of the {epochs}-epoch comparisons"), "seeds.md"),
                Report("distillation.report", students, ("--teacher", f"{runs[0]}/r56-ft.pt"),
                       "reports/distillation")]
    return reports


# ---------------------------------------------------------------------------------------------------------------
# One sweep per method, each from the quick preset's starting points (runs/study-quick/base: the published weights
# and the ResNet-56 fine-tuned with the quick recipe, the equally fine-tuned baseline): its checkpoints under
# runs/sweep-METHOD/, its table under the set's results folder. No benchmark: a sweep's table is the accuracy and
# size a setting buys; speed is the study's.

def quick_inputs(where, fine_tuned=True):
    base = f"{where.runs}/study-quick/base"
    configs = [Config("r56", "published ResNet-56", (published(base, 56),), measured=False),
               Config("r20", "published ResNet-20", (published(base, 20),), measured=False)]
    if fine_tuned:
        configs.append(Config("r56-ft", "ResNet-56, quick fine-tune (the baseline)",
                              (step(f"{base}/r56-ft.pt", "train", f"{base}/r56.pt", "--recipe", "quick", "--subset",
                                    "10000", "--data-dir", where.data, "--threads", where.threads, "--no-progress"),),
                              measured=False))
    return base, configs


QUICK_FT = ("--recipe", "quick", "--subset", "10000")


def sweep_folder(method):
    return lambda where, seed: f"{where.runs}/sweep-{method}"


def sweep_l1(where, seed):
    """L1 filter pruning over uniform prune ratios: prune (top-1 right after pruning), then the quick fine-tune."""
    base, out = quick_inputs(where)
    run = sweep_folder("l1")(where, seed)
    for r in ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"):
        out.append(Config(f"u{r}", f"L1 uniform {r}",
                          (step(f"{run}/u{r}.pt", "pruning_l1.prune", f"{base}/r56.pt", "--ratio", r, "--test-dir",
                                where.data, "--threads", where.threads),
                           step(f"{run}/u{r}-ft.pt", "train", f"{run}/u{r}.pt", *QUICK_FT, "--data-dir", where.data,
                                "--threads", where.threads, "--no-progress"))))
    return out


def sweep_weight(where, seed):
    """Magnitude weight pruning to P% (one global threshold), 4 gradual events inside a masked quick fine-tune."""
    base, out = quick_inputs(where)
    run = sweep_folder("weight")(where, seed)
    for p in ("30", "50", "70", "90", "95"):
        out.append(Config(f"p{p}", f"weight pruning {p}%",
                          (step(f"{run}/r56-p{p}.pt", "pruning_weight.prune", f"{base}/r56.pt",
                                "--percent", p, "--finetune", "--steps", "4", *QUICK_FT, "--data-dir", where.data,
                                "--threads", where.threads, "--no-progress"),)))
    return out


def sweep_lowrank(where, seed):
    """The three factorisations at half the MACs with ranks x8, decomposed data-free, then the quick fine-tune."""
    base, out = quick_inputs(where)
    run = sweep_folder("lowrank")(where, seed)
    for scheme in ("svd", "spatial", "tucker2"):
        name = f"r56-{scheme}-f5-m8"
        out.append(Config(name, f"low-rank {scheme}, 50% MACs, ranks x8",
                          (step(f"{run}/{name}.pt", "lowrank.decompose", f"{base}/r56.pt", "--scheme", scheme,
                                "--target-flops", "0.5", "--multiple", "8", "--test-dir", where.data,
                                "--threads", where.threads),
                           step(f"{run}/{name}-ft.pt", "train", f"{run}/{name}.pt", *QUICK_FT, "--data-dir",
                                where.data, "--threads", where.threads, "--no-progress"))))
    return out


def sweep_quant(where, seed):
    """Simulated n-bit quantisation: the ResNet-20 post-training and with a short QAT (1 quick epoch on 5,000
    images), beside the fp32 ResNet-20 fine-tuned with the same recipe (the fair reference of the QAT column); the
    ResNet-56 post-training only (CPU budget). Scored on CIFAR-10 test[:1000] (lossless)."""
    base, out = quick_inputs(where, fine_tuned=False)
    run, test = sweep_folder("quant")(where, seed), f"{where.data}/lossless-test1000"
    common = ("--data-dir", where.data, "--test-dir", test, "--threads", where.threads, "--no-progress")
    qat = ("--finetune", "--recipe", "quick", "--subset", "5000")

    def bits(model, code, *extra):
        w, a = code[1:].split("A")
        name = f"{model}-{code.lower()}" + ("" if extra else "-pt")
        return Config(name, f"{model} {code} {'QAT' if extra else 'post-training'}",
                      (step(f"{run}/{name}.pt", "quantization.qat", f"{base}/{model}.pt", "--weight-bits", w,
                            "--act-bits", a, *extra, *common),))
    out += [bits("r20", c, *qat) for c in ("W8A8", "W6A6", "W4A8", "W4A4", "W2A4")]
    out += [bits("r20", c) for c in ("W3A3", "W2A2")]
    out += [bits("r56", c) for c in ("W8A8", "W6A6", "W4A8", "W4A4", "W2A4")]
    out.append(Config("r20-fp32-ft", "ResNet-20 fp32, the same fine-tune",
                      (step(f"{run}/r20-fp32-ft.pt", "train", f"{base}/r20.pt", "--recipe", "quick", "--subset",
                            "5000", *common),)))
    return out


def sweep_distill(where, seed):
    """KD over students and temperatures (alpha 0.9), two-stage and single-stage FitNets, each beside a no-teacher
    twin with the same seed, init, epochs and schedule: one cosine epoch over 10,000 images, lr 0.05, batch 64, wd
    5e-4 as in the KD-Zoo students, from the quick preset's fine-tuned ResNet-56."""
    base, out = quick_inputs(where)
    run, teacher = distill_folder(where, seed), f"{base}/r56-ft.pt"
    sched = ("--data-dir", where.data, "--subset", "10000", "--epochs", "1", "--lr", "0.05", "--batch-size", "64",
             "--schedule", "cosine", "--weight-decay", "5e-4", "--seed", seed, "--threads", where.threads,
             "--no-progress")
    for arch in ("resnet20", "resnet10", "resnet1"):
        s = f"r{arch[6:]}"
        runs = [("noteacher", "distillation.train", ("--no-teacher",))]
        runs += [(f"kd-T{t}", "distillation.train", ("--temperature", t, "--alpha", "0.9")) for t in ("1", "2", "4")]
        runs += [("fitnet-T2", "fitnets.train", ("--temperature", "2", "--alpha", "0.9")),
                 ("fitnet1", "fitnets.train", ("--single-stage",))]
        for name, module, args in runs:
            out.append(Config(f"{s}-{name}", f"{arch}, {name}",
                              (step(f"{run}/{s}-{name}-s10000-e1.pt", module, arch, "--teacher", teacher, *args,
                                    *sched),)))
    return out


def distill_folder(where, seed):
    return f"{where.runs}/sweep-distill" + (f"-s{seed}" if seed else "")


def sweep_reports(module, folder, out, baseline=None):
    """A sweep's one table: every checkpoint of its folder (and of its seeds' folders) against the baseline."""
    def reports(where, seeds, csv):
        base = baseline(where) if baseline else f"{where.runs}/study-quick/base/r56-ft.pt"
        flag = "--teacher" if module == "distillation.report" else "--baseline"
        folders = [folder(where, s) for s in seeds]
        made = [f for f in existing(*(f"{d}/*.pt" for d in folders)) if f != base]
        return [Report(module, tuple(made), (flag, base), out)]
    return reports


def r110(where, seed):
    """The second teacher: a ResNet-110 trained from scratch on the JPEG-copy training set (no published weights
    reach these machines), then KD ResNet-110 -> ResNet-20 beside ResNet-56 -> ResNet-20 (the same student schedule),
    and Li et al.'s ResNet-110-A / -B pruned from it and fine-tuned with the budget of the ResNet-110's own fine-tune.
    14 cosine epochs: the committed run (results/r110/); He et al. train 164."""
    # He et al.'s lr 0.1, batch 128, wd 1e-4 and their ResNet-110 start (lr/10 for the first 400 iterations: at 0.1 a
    # 110-layer post-activation ResNet learns almost nothing in its first epochs, 46% test top-1 after 3 of them
    # here), with a cosine schedule that fits a short run. bf16 autocast where the CPU has it, for the teacher and the
    # fine-tunes it is compared with; the KD student in fp32, as the equal fine-tune's students are.
    base, out = quick_inputs(where, fine_tuned=False)
    run = f"{where.runs}/r110"
    device = ("--data-dir", where.data, "--threads", where.threads, "--device", "auto", "--no-progress")
    bf16 = ("--cpu-bf16",) if where.cpu_bf16 else ()
    ft = ("--recipe", "quick", "--epochs", "2", *device)
    out.append(Config("r110", "ResNet-110 from scratch, 14 epochs",
                      (step(f"{run}/r110.pt", "train", "resnet110", "--recipe", "scratch", "--epochs", "14",
                            "--schedule", "cosine", "--warmup-steps", "400", *bf16, *device),), measured=False))
    out.append(Config("r110-ft", "ResNet-110, 2-epoch fine-tune (the baseline)",
                      (step(f"{run}/r110-ft.pt", "train", f"{run}/r110.pt", *ft, *bf16),)))
    for v in ("A", "B"):
        out.append(Config(f"r110-{v}", f"Li et al. ResNet-110-{v}",
                          (step(f"{run}/r110-{v}.pt", "pruning_l1.prune", f"{run}/r110.pt", "--variant", v),
                           step(f"{run}/r110-{v}-ft.pt", "train", f"{run}/r110-{v}.pt", *ft, *bf16, "--baseline",
                                f"{run}/r110-ft.pt"))))
    out.append(Config("r20-kd-r110", "ResNet-20, KD from the ResNet-110",
                      (step(f"{run}/r20-kd-r110.pt", "distillation.train", f"{base}/r20.pt", "--teacher",
                            f"{run}/r110-ft.pt", "--temperature", "4", "--alpha", "0.5", *ft),)))
    return out


def r110_reports(where, seeds, csv):
    run = f"{where.runs}/r110"
    return [Report("pruning_l1.accuracy_table", existing(*(f"{run}/r110-{v}{s}.pt" for s in ("", "-ft")
                                                           for v in "AB")),
                   ("--baseline", f"{run}/r110-ft.pt"), "reports/l1_accuracy.md")]


def fisher_reports(where, seeds, csv):
    run = equal_finetune_folder(2)(where, 0)
    return [Report("pruning_fisher.report", existing(*(f"{run}/r56-{n}.pt" for n in ("B-ft", "u50r8-ft", "fisher72",
                                                                                   "fisher50", "fisher72r16"))),
                   ("--baseline", f"{run}/r56-ft.pt", "--benchmark", csv), "reports/fisher_vs_l1")]


SETS = {s.name: s for s in [
    StudySet("smoke", "synthetic data, tiny models, a few minutes (run by the test suite)",
             preset_folder("smoke"), study_preset("smoke"),
             bench=Bench("benchmark.csv", "r56-ft", "eager,onnx,openvino", "eager",
                         ("--batch-sizes", "1,16", "--quick"), quiet=False), reports=preset_reports("smoke")),
    StudySet("taste", "minutes: the published ResNet-56 compressed without any training, fastest runtime",
             preset_folder("taste"), taste,
             bench=Bench("benchmark.csv", "r56", "eager,FASTEST", "",
                         ("--batch-sizes", "1,64", "--repeat", "2", "--slices", "4", "--min-seconds", "1"))),
    StudySet("quick", "this 2-core CPU, ~1-2 h: published ResNet-20/56, short fine-tunes on the JPEG copy",
             preset_folder("quick"), study_preset("quick"),
             bench=Bench("benchmark.csv", "r56-ft", "onnx,openvino", "eager", QUICK_BENCH),
             reports=preset_reports("quick")),
    StudySet("paper", "the papers' schedules (160-epoch baseline, 40-epoch fine-tunes, 200-epoch students): GPUs",
             preset_folder("paper"), study_preset("paper"),
             bench=Bench("benchmark.csv", "r56-ft", "eager,compile,onnx,openvino", "eager",
                         ("--batch-sizes", "1,64", "--repeat", "3")), reports=preset_reports("paper")),
    StudySet("students", "~1.5 h here: ResNet-10 and ResNet-1 from scratch (no teacher, KD, FitNets), 3 seeds",
             lambda where, seed: f"{where.runs}/study-students/scratch-s{seed}", students, seeds=(0, 1, 2),
             seeded=True, bench_seeds=(0,),
             bench=Bench("benchmark.csv", "r56-ft", "eager,compile,onnx,openvino", "", QUICK_BENCH),
             reports=students_reports),
    StudySet("e2", "the 2-epoch equal fine-tune over 3 seeds", equal_finetune_folder(2),
             equal_finetune(2, E2_ITEMS, int8_of=("base", "kd", "kd32", "lowrank")), seeds=(0, 1, 2), seeded=True,
             bench=Bench("benchmark.csv", **EQUAL_BENCH), reports=seeds_reports(2)),
    StudySet("e8", "the 8-epoch equal fine-tune: every configuration", equal_finetune_folder(8),
             equal_finetune(8, E8_ITEMS), seeded=True,
             # Torch-Pruning's own ONNX export too, as its users would measure it (not fine-tuned:
             # docs/measure-your-model.md)
             bench=Bench("benchmark.csv", **dict(EQUAL_BENCH, options=EQUAL_BENCH["options"] + (
                 "--label", "torch-pruning")), model_files=("r56-tp.onnx",))),
    StudySet("e32", "the 32-epoch equal fine-tune: the configurations the answer turns on",
             equal_finetune_folder(32), equal_finetune(32, E32_ITEMS), seeds=(0, 1, 2), seeded=True,
             bench=Bench("benchmark.csv", **EQUAL_BENCH)),
    StudySet("fisher_e2", "Fisher pruning against L1 at the 2-epoch equal fine-tune, every runtime",
             equal_finetune_folder(2), equal_finetune(2, ("base", "l1b", "l1u50", "fisher72", "fisher50",
                                                          "fisher72r16"), int8_of=()),
             bench=Bench("benchmark.csv", "base", "eager,compile,onnx,openvino", "", QUICK_BENCH),
             reports=fisher_reports),
    StudySet("r110", "a ResNet-110 teacher from scratch, Li et al. 110-A/B and KD into ResNet-20",
             lambda where, seed: f"{where.runs}/r110", r110,
             bench=Bench("benchmark.csv", "r110-ft", "eager,onnx,openvino", "", QUICK_BENCH), reports=r110_reports),
    StudySet("l1", "sweep: L1 filter pruning over uniform ratios 0.1-0.7, quick fine-tune",
             sweep_folder("l1"), sweep_l1, reports=sweep_reports("pruning_l1.accuracy_table", sweep_folder("l1"),
                                                                 "sweep.md")),
    StudySet("weight_pruning", "sweep: magnitude weight pruning 30-95%, gradual, quick fine-tune",
             sweep_folder("weight"), sweep_weight,
             reports=sweep_reports("pruning_weight.report", sweep_folder("weight"), "accuracy")),
    StudySet("lowrank", "sweep: SVD, spatial and Tucker-2 at half the MACs, quick fine-tune",
             sweep_folder("lowrank"), sweep_lowrank,
             reports=sweep_reports("lowrank.report", sweep_folder("lowrank"), "r56")),
    StudySet("quantization", "sweep: simulated 2-8 bit quantisation, post-training and QAT",
             sweep_folder("quant"), sweep_quant,
             reports=sweep_reports("quantization.report", sweep_folder("quant"), "bits",
                                   baseline=lambda where: f"{where.runs}/sweep-quant/r20-fp32-ft.pt")),
    StudySet("distillation", "sweep: KD over students and temperatures, FitNets, no-teacher twins",
             distill_folder, sweep_distill, seeded=True,
             reports=sweep_reports("distillation.report", distill_folder, "sweep")),
]}

# The budget table (results/budget.csv) and its figure: the sets whose benchmark CSV gives a point of the curve,
# with the budget of the ones whose rows do not record train_epochs (measured before the column existed); None:
# read from the rows.
BUDGET_SOURCES = (("quick", 0.2), ("e2", 2), ("fisher_e2", 2), ("e8", None), ("e32", None))
# The configurations of results/budget.csv and the README's answer, in the order of their tables, and the quick
# preset's checkpoint names for the same configurations.
BUDGET_CONFIGS = tuple(EQUAL_ITEMS[i] for i in ("base", "l1b", "l1r16", "fisher72", "lowrank", "w90kd", "tp", "kd32",
                                                "kd", "nt32", "nt", "fitnets"))
QUICK_NAMES = {"student-kd": "r20-kd", "student-noteacher": "r20-noteacher", "student-fitnet": "r20-fitnet",
               "r56-f72": "r56-fisher72"}
