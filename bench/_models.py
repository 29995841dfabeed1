"The models the benchmarks compare: this project's CXRNet variants and the paper's module layout."
from torch import nn
from _common import ROOT  # noqa: F401  (puts the repo on sys.path)

def make(name:str) -> nn.Module:
    """A model by benchmark name: 'lka' (this project's VGG16-BN + LKA 3-5), 'paper' (the paper's module layout,
    `cxr_lka.models.PaperVGG16LKA`), 'plain' (VGG16-BN, no attention), or 'ARCH[:ATTENTION[:PLACEMENT]]' for any
    backbone record of `cxr_lka.backbones` at its default stages (e.g. 'densenet121:cbam:paper', 'resnet50:none')."""
    from cxr_lka.models import build_model, PaperVGG16LKA, ARCHS
    if name == "lka":   return build_model("vgg16_bn", "lka", (3, 4, 5))
    if name == "paper": return PaperVGG16LKA()
    if name == "plain": return build_model("vgg16_bn", None)
    arch, att, pl = (name.split(":") + [None, None])[:3]
    if arch not in ARCHS:
        raise ValueError(f"Unknown model {name!r}; choose 'lka', 'paper', 'plain' or ARCH[:ATTENTION[:PLACEMENT]] with ARCH in {sorted(ARCHS)}.")
    return build_model(arch, None if att in (None, "none") else att, placement=pl)

NAMES = {"lka": "cxr_lka VGG16-BN-LKA", "paper": "paper layout VGG16-BN-LKA", "plain": "plain VGG16-BN"}
