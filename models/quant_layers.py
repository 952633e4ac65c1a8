"""Quantised layer modules (simulated n-bit quantisation) that a checkpoint's spec can name."""
