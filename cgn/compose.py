"""The analytic composer of the paper: x = m * f + (1 - m) * b."""

from torch import Tensor


def compose(mask: Tensor, foreground: Tensor, background: Tensor) -> Tensor:
    """Blend foreground and background through the mask; a 1-channel mask broadcasts over RGB."""
    return mask * foreground + (1 - mask) * background
