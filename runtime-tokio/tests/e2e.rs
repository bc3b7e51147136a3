//! warren-host's shared end-to-end suite on tokio.

warren_host::suite_tests!(warren_tokio::Tokio);
