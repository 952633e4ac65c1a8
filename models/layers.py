"""Replacement module types that a checkpoint's spec can name (factorised convs, quantised layers, ...).

Each builder takes the plain spec entry and returns an nn.Module with the parameter names the saved
state_dict uses. Methods create these modules through the same builders, so saving and loading agree.
"""
