"""The shared backbone: one encoder, its task heads, and how services reach it."""
