"""The recipe line that every report header prints comes from the checkpoint's metadata, not from a constant."""
from common.checkpoint import describe_recipe


def test_recipe_line_names_the_recorded_schedule():
    meta = {"recipe": {"recipe": "quick", "epochs": 2, "lr": 0.01, "schedule": "cosine", "weight_decay": 1e-4,
                       "subset": None, "batch_size": 128, "seed": 0}}
    assert describe_recipe(meta) == ("quick: 2 epoch(s), lr 0.01 cosine, wd 0.0001, all train images, "
                                      "batch 128, seed 0")
    meta["recipe"].update(subset=10000, steps=4)
    assert describe_recipe(meta).endswith("10000 train images, batch 128, seed 0, 4 gradual pruning steps")
    assert describe_recipe({"recipe": {}}) == describe_recipe({}) == "no fine-tune"


def test_recipe_line_names_where_and_in_which_autocast_precision_it_trained():
    meta = {"recipe": {"recipe": "quick", "epochs": 2, "lr": 0.01, "schedule": "cosine", "weight_decay": 1e-4,
                       "subset": None, "batch_size": 128, "seed": 1, "device": "cuda (NVIDIA H200)",
                       "autocast": "bf16"}}
    assert describe_recipe(meta).endswith("seed 1, bf16 autocast on cuda (NVIDIA H200)")
    meta["recipe"].update(device="cpu", autocast="")
    assert describe_recipe(meta).endswith("batch 128, seed 1")
    meta["recipe"].update(device="cuda (NVIDIA H200)")  # --no-amp on a GPU
    assert describe_recipe(meta).endswith("seed 1, on cuda (NVIDIA H200)")
