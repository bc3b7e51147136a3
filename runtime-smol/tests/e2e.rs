//! warren-host's shared end-to-end suite on smol.

warren_host::suite_tests!(warren_smol::Smol);
