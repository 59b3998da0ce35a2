"""Classifiers: scikit-learn-style estimators declaring the input kinds they accept.

This table is the one place a built-in model is named; its class carries a bare
``@MODELS.register()``. ``accepts`` is declared here so ``benchmark list`` needs no import.
"""
from benchmark.core.registry import Registry

MODELS = Registry("model")
_FLOW = ("flow_image",)
_PIXELS = ("flow_image", "image", "frames")
_ANY = ("flow_image", "image", "tokens", "vector")
MODELS.register_lazy("ststnet", "models.ststnet:STSTNet", accepts=("flow_image", "image"))
MODELS.register_lazy("offapexnet", "models.offapexnet:OFFApexNet", accepts=_FLOW)
MODELS.register_lazy("htnet", "models.htnet:HTNet", accepts=_FLOW)
MODELS.register_lazy("htnet-small", "models.htnet:HTNetSmall", accepts=_FLOW)
MODELS.register_lazy("vit", "models.timm_models:ViT", accepts=_PIXELS)
MODELS.register_lazy("swin", "models.timm_models:Swin", accepts=_PIXELS)
MODELS.register_lazy("poolformer_m36", "models.timm_models:PoolFormerM36", accepts=_PIXELS)
MODELS.register_lazy("poolformer_m48", "models.timm_models:PoolFormerM48", accepts=_PIXELS)
MODELS.register_lazy("vit-tiny", "models.timm_models:ViTTiny", accepts=_PIXELS)
MODELS.register_lazy("swin-tiny", "models.timm_models:SwinTiny", accepts=_PIXELS)
MODELS.register_lazy("poolformer-tiny", "models.timm_models:PoolFormerTiny", accepts=_PIXELS)
MODELS.register_lazy("efficientnet-lite0", "models.timm_models:EfficientNetLite0", accepts=_PIXELS)
MODELS.register_lazy("svm", "models.classical:SVM", accepts=_ANY)
MODELS.register_lazy("transformer", "models.transformer:Transformer", accepts=("tokens", "flow_image", "image"))
MODELS.register_lazy("dface-joint", "models.dface_joint:DFaceJoint", accepts=("pairs",))
MODELS.register_lazy("logreg", "models.linear:LogReg", accepts=_ANY)
MODELS.register_lazy("dummy", "models.dummy:Dummy", accepts=("flow_image", "image", "frames", "tokens", "vector"))
