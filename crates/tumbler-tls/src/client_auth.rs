//! The client certificate verifier of the node's listeners: webpki's, with two rules added.
//!
//! - A client certificate must name clientAuth in its extended key usage. webpki accepts a
//!   certificate without the extension for any purpose, but the loader and `cert list` require
//!   clientAuth, and so must the handshake.
//! - A certificate whose issuer name matches a trusted CA but whose signature does not verify
//!   with that CA's key was signed by another CA of the same name (every CockroachDB-style CA is
//!   `CN=Cockroach CA`). webpki reports that as a bad signature, which reaches the client as a
//!   `decrypt_error` alert; it is reported as an unknown issuer instead, so the client sees
//!   `unknown_ca`, the alert for a CA that is not trusted.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use tumbler_pki::CertInfo;

/// Wraps a webpki client verifier with the rules above.
#[derive(Debug)]
pub(crate) struct ClientAuthVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientAuthVerifier {
    pub(crate) fn new(inner: Arc<dyn ClientCertVerifier>) -> Self {
        Self { inner }
    }
}

impl ClientCertVerifier for ClientAuthVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let leaf = CertInfo::parse(end_entity.clone().into_owned())
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if !leaf.has_client_auth() {
            return Err(Error::InvalidCertificate(CertificateError::InvalidPurpose));
        }
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Err(Error::InvalidCertificate(CertificateError::BadSignature)) => {
                Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
            }
            result => result,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
