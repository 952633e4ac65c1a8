"""Statistics over training seeds: mean +- sd, and the paired 95% t interval a gain or a loss must clear.

A comparison is paired by seed (same seed = same initialisation, data order and augmentation for a method and the
thing it is compared with), so its interval is mean(d) +- t(0.975, n-1) sd(d) / sqrt(n) over the per-seed
differences d.
"""
import math

# Two-sided 95% Student t critical values t(0.975, df), df = 1..30 (statistical tables); beyond, the normal 1.96.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def mean_sd(values):
    """(mean, sample sd; 0 for one value) of a list of numbers."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, sd


def paired_interval(differences):
    """95% t interval of the mean of per-seed paired differences; None for fewer than 2 seeds."""
    n = len(differences)
    if n < 2:
        return None
    mean, sd = mean_sd(differences)
    half = (T975[n - 2] if n - 1 <= len(T975) else 1.96) * sd / math.sqrt(n)
    return mean - half, mean + half


MIN_SEEDS_FOR_A_CLAIM = 3  # two seeds that happen to agree (sd 0) give a zero-width interval: not evidence


def verdict(interval, n=MIN_SEEDS_FOR_A_CLAIM):
    if interval is None:
        return "one seed: no interval"
    if n < MIN_SEEDS_FOR_A_CLAIM:
        return f"{n} seeds: too few to claim"
    low, high = interval
    return "gain" if low > 0 else "loss" if high < 0 else "within noise"


def pm(values, digits=2):
    mean, sd = mean_sd(values)
    return f"{mean:.{digits}f} +- {sd:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def tolerance_verdict(interval, n, tolerance):
    """The answer's rule (docs/results.md, "The verdict rule", fixed before seeds 1 and 2 of the 32-epoch set
    existed): a configuration is "within T points" of its baseline only when the paired 95% interval of its change
    lies above -T; "more than T points behind" when it lies below -T; "not distinguishable from -T" when it straddles
    -T. One seed has no interval and gets no verdict word, two seeds are too few (MIN_SEEDS_FOR_A_CLAIM)."""
    if n < 2 or interval is None:
        return "one seed"
    if n < MIN_SEEDS_FOR_A_CLAIM:
        return f"{n} seeds: too few"
    low, high = interval
    if low > -tolerance:
        return f"within {tolerance:g} points"
    if high < -tolerance:
        return f"more than {tolerance:g} points behind"
    return f"not distinguishable from -{tolerance:g}"
