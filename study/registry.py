"""Every configuration of the study, in one place: what each one is, the CLI calls that make it, and the sets
(presets and budgets) that list them. The engine (study/engine.py) turns a set and its seeds into tasks; summaries,
figures and results/budget.csv name configurations from here.

A configuration is a list of steps; a step is one output file and the one call of an existing CLI that writes it
(checkpoints are written atomically, so an output on disk is a finished step). Inputs are other steps' outputs:
the engine finds the order from them.
"""
from dataclasses import dataclass, field

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
    threads: int = 0   # 0: the worker's threads

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
    bench_seeds: tuple = None  # the seeds `bench` measures by default (None: the set's seeds)
    bench: Bench = None
    budget_epochs: float = None  # the budget of a set whose rows do not record train_epochs (older CSVs)
    reports: tuple = field(default=())  # method tables written by `report`: (module, glob patterns, options)


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

QUICK_BENCH = dict(options=("--batch-sizes", "1,64", "--repeat", "3", "--slices", "8", "--min-seconds", "1"))
QUICK_REPORTS = (("pruning_l1.accuracy_table", "l1_accuracy.md", ("l1/r56-*.pt",), ()),
                 ("pruning_fisher.report", "fisher_vs_l1", ("fisher/r56-*.pt", "l1/r56-*-ft.pt"), ("benchmark",)),
                 ("pruning_weight.report", "weight_pruning", ("weight/r56-p*.pt",), ()),
                 ("lowrank.report", "lowrank", ("lowrank/r56-*.pt",), ()),
                 ("distillation.report", "distillation", ("distill/student-*.pt",), ("benchmark", "teacher")))

SETS = {s.name: s for s in [
    StudySet("smoke", "synthetic data, tiny models, a few minutes (run by the test suite)",
             preset_folder("smoke"), study_preset("smoke"),
             bench=Bench("benchmark.csv", "r56-ft", "eager,onnx,openvino", "eager",
                         ("--batch-sizes", "1,16", "--quick"), quiet=False), reports=QUICK_REPORTS),
    StudySet("taste", "minutes: the published ResNet-56 compressed without any training, fastest runtime",
             preset_folder("taste"), taste, budget_epochs=0,
             bench=Bench("benchmark.csv", "r56", "eager,FASTEST", "",
                         ("--batch-sizes", "1,64", "--repeat", "2", "--slices", "4", "--min-seconds", "1"))),
    StudySet("quick", "this 2-core CPU, ~1-2 h: published ResNet-20/56, short fine-tunes on the JPEG copy",
             preset_folder("quick"), study_preset("quick"), budget_epochs=0.2,
             bench=Bench("benchmark.csv", "r56-ft", "onnx,openvino", "eager", QUICK_BENCH["options"]),
             reports=QUICK_REPORTS),
    StudySet("paper", "the papers' schedules (160-epoch baseline, 40-epoch fine-tunes, 200-epoch students): GPUs",
             preset_folder("paper"), study_preset("paper"),
             bench=Bench("benchmark.csv", "r56-ft", "eager,compile,onnx,openvino", "eager",
                         ("--batch-sizes", "1,64", "--repeat", "3")), reports=QUICK_REPORTS),
    StudySet("students", "~1.5 h here: ResNet-10 and ResNet-1 from scratch (no teacher, KD, FitNets), 3 seeds",
             lambda where, seed: f"{where.runs}/study-students/scratch-s{seed}", students, seeds=(0, 1, 2),
             seeded=True, bench_seeds=(0,),
             bench=Bench("benchmark.csv", "r56-ft", "eager,compile,onnx,openvino", "",
                         QUICK_BENCH["options"])),
    StudySet("e2", "the 2-epoch equal fine-tune over 3 seeds", equal_finetune_folder(2),
             equal_finetune(2, E2_ITEMS, int8_of=("base", "kd", "kd32", "lowrank")), seeds=(0, 1, 2), seeded=True,
             bench=Bench("benchmark.csv", **EQUAL_BENCH), budget_epochs=2),
    StudySet("e8", "the 8-epoch equal fine-tune: every configuration", equal_finetune_folder(8),
             equal_finetune(8, E8_ITEMS), seeded=True, bench=Bench("benchmark.csv", **EQUAL_BENCH)),
    StudySet("e32", "the 32-epoch equal fine-tune: the configurations the answer turns on",
             equal_finetune_folder(32), equal_finetune(32, E32_ITEMS), seeds=(0, 1, 2), seeded=True,
             bench=Bench("benchmark.csv", **EQUAL_BENCH)),
]}

# The budget table (results/budget.csv) and its figure: the sets whose benchmark CSV gives a point of the curve,
# with the budget of the ones whose rows do not record train_epochs (measured before the column existed); None:
# read from the rows. fisher_e2 is Fisher pruning's own 2-epoch run (results/fisher_e2/benchmark.csv).
BUDGET_SOURCES = (("quick", 0.2), ("e2", 2), ("fisher_e2", 2), ("e8", None), ("e32", None))
# The configurations of results/budget.csv and the README's answer, in the order of their tables, and the quick
# preset's checkpoint names for the same configurations.
BUDGET_CONFIGS = tuple(EQUAL_ITEMS[i] for i in ("base", "l1b", "l1r16", "fisher72", "lowrank", "w90kd", "tp", "kd32",
                                                "kd", "nt32", "nt", "fitnets"))
QUICK_NAMES = {"student-kd": "r20-kd", "student-noteacher": "r20-noteacher", "student-fitnet": "r20-fitnet",
               "r56-f72": "r56-fisher72"}
