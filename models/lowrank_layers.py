"""Factorised convolution modules (low-rank decomposition) that a checkpoint's spec can name."""
