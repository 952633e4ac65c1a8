"""Hinton et al. 2015 knowledge distillation: the loss, and a frozen teacher that feeds it (used by distillation/,
fitnets/ and the masked fine-tune of pruning_weight/, so it lives in the shared library).

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T))  +  (1 - alpha) * CE(s, y)

The KL term is summed over classes and averaged over the batch ("batchmean"), which is the
definition of KL divergence per example. The widely copied knowledge-distillation-pytorch code
uses nn.KLDivLoss() with its element-mean default, which also divides by the number of classes
and so silently shrinks the soft term by 10x on CIFAR-10. The T^2 factor keeps the soft-target
gradients at the same scale as T changes (Hinton et al., section 2).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import UserError


def add_kd_args(p, temperature=4.0, alpha=0.9):
    """--teacher, --temperature and --alpha: the KD loss's settings, the same flags for every method that distils."""
    p.add_argument(
        "--teacher",
        metavar="CKPT",
        help="teacher checkpoint (inputs are renormalised to its own statistics if they differ)",
    )
    p.add_argument(
        "--temperature", "-T", type=float, default=temperature, help="softmax temperature of the soft targets"
    )
    p.add_argument("--alpha", type=float, default=alpha, help="weight of the soft (KD) term; 1 - alpha goes to CE")


def check_kd_args(temperature, alpha):
    if not temperature > 0:
        raise UserError(f"--temperature must be positive, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"--alpha must lie in [0, 1], got {alpha}")


def kd_loss(student_logits, teacher_logits, labels, temperature=4.0, alpha=0.9):
    """alpha * T^2 * KL(teacher_T || student_T) (batch mean) + (1 - alpha) * cross-entropy."""
    t = float(temperature)
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=1),
        F.log_softmax(teacher_logits.detach() / t, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)
    if alpha >= 1.0:
        return soft
    return alpha * soft + (1.0 - alpha) * F.cross_entropy(student_logits, labels)


class FrozenTeacher(nn.Module):
    """A teacher that can only be evaluated: eval mode, no parameter requires grad, inference_mode.

    Kept outside the student so the shared loop's optimizer, train() calls and checkpoints never
    see it."""

    def __init__(self, model):
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def train(self, mode=True):  # the loop may call .train() on anything it holds; a teacher stays in eval
        return super().train(False)

    def forward(self, images):
        self.model.eval()
        with torch.inference_mode():
            logits = self.model(images)
        # inference tensors cannot enter an autograd graph; a clone made outside inference_mode can
        return logits.clone()


def make_kd_loss_fn(teacher, temperature, alpha):
    """A `loss_fn(model, images, labels) -> (loss, logits)` for common.training.fit: one teacher pass per batch."""
    check_kd_args(temperature, alpha)

    def loss_fn(model, images, labels):
        teacher_logits = teacher(images)
        logits = model(images)
        return kd_loss(logits, teacher_logits, labels, temperature, alpha), logits

    return loss_fn
