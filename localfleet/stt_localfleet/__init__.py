"""stt-localfleet: a real Kubernetes control plane on one machine, for stt-fleet's tests and demo.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are built from their Go modules
(`binaries`), started with certificates of their own (`pki`, `controlplane`), and joined by a
process kubelet (`kubelet`) that runs the pods bound to node `localfleet` as local processes, and a
NodePort proxy (`nodeport`). The product packages never import this one.
"""
