"""The op catalogue, one file per family (and one for the block epilogue): each declares its ops' OPS entries (and
HELPER_OPS, ops without tensors); op_catalogue.py collects them."""
