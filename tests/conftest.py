from __future__ import annotations

import pytest
import torch

import zoo


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def my_model():
    return zoo.MyModel()
