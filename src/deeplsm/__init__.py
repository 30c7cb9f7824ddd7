"""deeplsm: lesion-symptom mapping with multi-output 3D CNNs, attribution maps and classical baselines.

Heavy submodules (torch, captum, lightning) are imported lazily by the stages that need them.
"""

__version__ = "0.1.0"

from deeplsm.exceptions import DeepLSMError

__all__ = ["DeepLSMError", "__version__"]
