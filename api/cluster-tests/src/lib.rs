//! The gateway's cluster tests live in `tests/` (`cargo test -p serre-cluster-tests`):
//! `cluster.rs` (tenants from the cluster, the sandbox pusher, the `data-keys` hook),
//! `runs.rs` (trial runs end to end, the operator in-process with object storage on Garage)
//! and `calibration.rs` (the measured energy mode against a real Prometheus). They are a
//! crate of their own so that the gateway, `serre-api`, does not take `serre-operator` even
//! as a dev-dependency. They need a control plane (`deploy/dev/control-plane.sh`, or
//! `SERRE_TEST_KUBECONFIG`) and the gateway's binary built beside them
//! (`cargo build -p serre-api`; `cargo test --workspace` builds it). This library is empty.
