"""Model: feature spec, text encoder, bottoms (shared_bottom, mmoe, ple), towers, losses.

Import the modules themselves (`mtlrec.model.spec`, `mtlrec.model.multitask`, ...): the package
imports nothing, so reading a feature spec needs no torch.
"""
