"""rxkube: reactive-stream combinators for Kubernetes watches."""
