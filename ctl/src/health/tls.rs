//! HTTPS negotiate checks: the HTTP check over TLS (rustls, ring). Like
//! ldirectord's LWP check, the server's certificate is not verified: the
//! check asks whether the service answers, not who it is; the handshake's
//! signatures are still checked so the session is a real TLS session.

use std::sync::{Arc, OnceLock};

use tokio::io::AsyncWriteExt;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

use super::http;
use super::probe::{Outcome, Spec};

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn connector() -> Result<TlsConnector, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(crypto::ring::default_provider());
            let cfg = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Ok(Arc::new(cfg))
        })
        .clone()
        .map(TlsConnector::from)
}

pub async fn https_check(s: &Spec) -> Outcome {
    let connector = connector().map_err(|e| format!("tls: {e}"))?;
    let tcp = super::probe::tcp(s).await.map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(s.host.clone())
        .unwrap_or_else(|_| ServerName::IpAddress(std::net::IpAddr::V4(*s.target.ip()).into()));
    let mut tls = connector.connect(name, tcp).await.map_err(|e| format!("tls handshake: {e}"))?;
    tls.write_all(&http::request(s.httpmethod, &s.request, &s.host)).await.map_err(|e| format!("send: {e}"))?;
    let buf = super::probe::read_http(&mut tls, s.httpmethod).await.map_err(|e| format!("receive: {e}"))?;
    http::judge(s.httpmethod, &buf, s.receive.as_ref()).map(|r| format!("TLS, {r}"))
}
