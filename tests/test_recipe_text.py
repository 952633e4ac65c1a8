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
