"The models the benchmarks compare: this project's CXRNet variants and the paper's module layout."
import torch, torchvision
from torch import nn
from _common import ROOT  # noqa: F401  (puts the repo on sys.path)

def paper_vgg16_lka(n_out:int=14) -> nn.Module:
    """The paper's module layout (block1..block5, lka3..lka5, classifier), as DESIGN.md describes it.
    Taken from cxr_lka.models when it exports a reference `PaperVGG16LKA`, else built here."""
    try:
        from cxr_lka.models import PaperVGG16LKA
        return PaperVGG16LKA()
    except ImportError: pass
    from cxr_lka.attention import LKA
    class PaperVGG16LKA(nn.Module):
        def __init__(self):
            super().__init__()
            f = torchvision.models.vgg16_bn(weights=None).features
            self.block1, self.block2, self.block3, self.block4, self.block5 = \
                f[0:6], f[7:13], f[14:23], f[24:33], f[34:43]
            self.pool = nn.MaxPool2d(2, 2)
            self.lka3, self.lka4, self.lka5 = LKA(256), LKA(512), LKA(512)
            self.gap, self.dropout, self.classifier = nn.AdaptiveAvgPool2d(1), nn.Dropout(0.5), nn.Linear(512, n_out)
        def forward(self, x):
            x = self.pool(self.block1(x)); x = self.pool(self.block2(x))
            x = self.pool(self.lka3(self.block3(x))); x = self.pool(self.lka4(self.block4(x)))
            x = self.pool(self.lka5(self.block5(x)))
            return self.classifier(self.dropout(torch.flatten(self.gap(x), 1)))
    return PaperVGG16LKA()

def make(name:str) -> nn.Module:
    "A model by benchmark name: 'lka' (this project), 'paper' (paper layout), 'plain' (VGG16-BN, no attention)."
    from cxr_lka.models import build_model
    if name == "lka":   return build_model("vgg16_bn", "lka", (3, 4, 5))
    if name == "paper": return paper_vgg16_lka()
    if name == "plain": return build_model("vgg16_bn", None)
    raise ValueError(f"Unknown model {name!r}; choose 'lka', 'paper' or 'plain'.")

NAMES = {"lka": "cxr_lka VGG16-BN-LKA", "paper": "paper layout VGG16-BN-LKA", "plain": "plain VGG16-BN"}
