"""The Kubernetes-native door: a kopf controller that turns job objects into job workflows."""
