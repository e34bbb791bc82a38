"""kubatch: AWS Batch, rebuilt as a Kubernetes-native operator."""

__version__ = "0.1.0"

GROUP = "kubatch.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
