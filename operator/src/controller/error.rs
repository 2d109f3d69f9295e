use kube::runtime::finalizer;

/// Everything that can go wrong while reconciling. Problems with an object's spec are
/// not errors: they become status conditions. These are the failures worth a retry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),

    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),

    #[error("tenant {tenant} still has sandboxes ({sandboxes}); delete them first")]
    TenantHasSandboxes { tenant: String, sandboxes: String },

    #[error("waiting for namespace {0} to be deleted")]
    NamespaceTerminating(String),

    #[error("object is missing {0}")]
    MissingField(&'static str),

    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),

    #[error("the sandbox cache stopped (the controller is shutting down)")]
    CacheStopped,
}

impl Error {
    /// Low-cardinality category for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 403 => "forbidden",
            Error::Kube(_) => "api",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.category()
                }
                _ => "finalizer",
            },
            Error::TenantHasSandboxes { .. } => "tenant_in_use",
            Error::NamespaceTerminating(_) => "waiting_namespace",
            Error::MissingField(_) => "invalid_object",
            Error::Storage(_) => "storage",
            Error::CacheStopped => "shutdown",
        }
    }

    /// Waiting for something expected is not a failure worth logging as one.
    pub fn is_waiting(&self) -> bool {
        matches!(self.category(), "tenant_in_use" | "waiting_namespace")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
