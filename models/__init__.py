"""Classifiers: scikit-learn-style estimators declaring the input kinds they accept."""
from benchmark.core.registry import Registry

MODELS = Registry("model")
MODELS.register_lazy("ststnet", "models.ststnet:STSTNet")
MODELS.register_lazy("offapexnet", "models.offapexnet:OFFApexNet")
MODELS.register_lazy("htnet", "models.htnet:HTNet")
MODELS.register_lazy("htnet-small", "models.htnet:HTNetSmall")
MODELS.register_lazy("vit", "models.timm_models:ViT")
MODELS.register_lazy("swin", "models.timm_models:Swin")
MODELS.register_lazy("poolformer_m36", "models.timm_models:PoolFormerM36")
MODELS.register_lazy("poolformer_m48", "models.timm_models:PoolFormerM48")
MODELS.register_lazy("vit-tiny", "models.timm_models:ViTTiny")
MODELS.register_lazy("swin-tiny", "models.timm_models:SwinTiny")
MODELS.register_lazy("poolformer-tiny", "models.timm_models:PoolFormerTiny")
MODELS.register_lazy("svm", "models.classical:SVM")
MODELS.register_lazy("transformer", "models.transformer:Transformer")
MODELS.register_lazy("logreg", "models.linear:LogReg")
