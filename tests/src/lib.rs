//! Shared helpers for the end-to-end tests: where the harness's services and images are.
//! It must not start services itself beyond calling the project's harness scripts.
