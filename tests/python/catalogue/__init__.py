"""The test catalogues, one file per family (and one for the block epilogue): each declares its ops (OPS, and
HELPER_OPS for ops without tensors) and its module kinds (MODULES); op_catalogue.py and module_catalogue.py collect
them."""
