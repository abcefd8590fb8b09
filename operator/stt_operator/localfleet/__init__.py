"""A small cluster on one machine: a local Kubernetes API server (`apiserver`) and, built on it,
the process kubelet and NodePort proxy of the local fleet. See docs/localfleet-apiserver.md."""
