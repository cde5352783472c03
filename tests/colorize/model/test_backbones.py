"""Our ResNet stages and ViT-S/14 compute what the libraries the checkpoint was trained with
compute (torchvision's ResNets, timm's DINOv2 ViT), given the same weights."""

from __future__ import annotations

import pytest
import torch

from colorize.model.resnet import BasicBlock, Bottleneck, resnet_stage
from colorize.model.vit import VisionTransformerS14


def _randomise_batch_norms(module: torch.nn.Module, generator: torch.Generator) -> None:
    for norm in module.modules():
        if isinstance(norm, torch.nn.BatchNorm2d):
            norm.running_mean.copy_(torch.randn(norm.num_features, generator=generator) * 0.1)
            norm.running_var.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
            norm.weight.data.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
            norm.bias.data.copy_(torch.randn(norm.num_features, generator=generator) * 0.1)


@torch.no_grad()
def test_resnet_stages_match_torchvision():
    resnet = pytest.importorskip("torchvision.models.resnet",
                                 reason="torchvision is a test extra: pip install -e '.[test]'")

    generator = torch.Generator().manual_seed(0)
    for reference, block, stages in (
        (resnet.resnet50(weights=None), Bottleneck, [(64, 64, 3, 1), (256, 128, 4, 2), (512, 256, 6, 2)]),
        (resnet.resnet18(weights=None), BasicBlock, [(64, 64, 2, 1), (64, 128, 2, 2), (128, 256, 2, 2)]),
    ):
        reference.eval()
        _randomise_batch_norms(reference, generator)
        x = torch.randn(1, 64, 20, 24, generator=generator)
        expected = reference.layer3(reference.layer2(reference.layer1(x)))
        ours = torch.nn.Sequential(*(resnet_stage(block, *stage) for stage in stages)).eval()
        library_state = {**{f"0.{k}": v for k, v in reference.layer1.state_dict().items()},
                         **{f"1.{k}": v for k, v in reference.layer2.state_dict().items()},
                         **{f"2.{k}": v for k, v in reference.layer3.state_dict().items()}}
        ours.load_state_dict(library_state, strict=True)
        assert torch.equal(ours(x), expected), block.__name__


@torch.no_grad()
def test_vit_blocks_match_timm_dinov2():
    timm = pytest.importorskip("timm", reason="timm is a test extra: pip install -e '.[test]'")

    reference = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=518,
                                  num_classes=0).eval()
    generator = torch.Generator().manual_seed(1)
    for parameter in reference.parameters():
        parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    ours = VisionTransformerS14().eval()
    state = dict(reference.state_dict(), mask_token=torch.zeros(1, 384))
    ours.load_state_dict(state, strict=True)
    tokens = torch.randn(1, 1 + 6 * 5, 384, generator=generator)
    expected, got = tokens, tokens
    for theirs, mine in zip(reference.blocks, ours.blocks):
        expected, got = theirs(expected), mine(got)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(ours.norm(got), reference.norm(expected), rtol=0, atol=0)
    image = torch.randn(1, 3, 28, 42, generator=generator)
    torch.testing.assert_close(ours.patch_embed.proj(image), reference.patch_embed.proj(image),
                               rtol=0, atol=0)
