"""Shared fixtures: OpenCLIP models built once per session on the meta device."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def vit_b_16():
    """OpenCLIP ViT-B-16 (CustomTextCLIP), meta device, eval mode, no weights."""
    from fxflops.zoo import build_open_clip

    return build_open_clip("ViT-B-16")
