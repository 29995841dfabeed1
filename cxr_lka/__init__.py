__version__ = "0.1.0"

# fastai compiles a few layers with torch.jit.script at import, and recent torch versions answer with a
# FutureWarning on every import: filtered here, once, before any chapter imports fastai (that warning only).
import warnings as _warnings
JIT_DEPRECATION = r"`torch\.jit\.script` is deprecated"
_warnings.filterwarnings('ignore', message=JIT_DEPRECATION, category=FutureWarning)
