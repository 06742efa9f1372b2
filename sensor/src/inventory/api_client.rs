//! The Kubernetes API client. kube's default stack (the kubeconfig's TLS,
//! authentication, extra headers, timeouts, retries) is assembled here,
//! as kube's `ClientBuilder` does, only so that its TCP connector can
//! announce each connection as the sensor's own (`capture::own`) before a
//! byte of it is sent. The capture sees the sensor's API connections like
//! any other; the short ones (a re-list after a dropped watch) may close
//! before the run loop next lists the sensor's sockets, and would then be
//! reported as traffic. kube's builder takes no connector, hence this.
//!
//! A kubeconfig with a proxy keeps kube's own client and its proxy
//! connectors: those connections are found by listing, as before.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use kube::{Client, Config};
use tower::retry::RetryLayer;
use tower::{BoxError, Service, ServiceBuilder};

use crate::capture::own::Announced;

/// hyper-util's connector, announcing every connection it makes.
#[derive(Clone)]
struct Announcing {
    inner: HttpConnector,
    own: Announced,
}

type Connected = TokioIo<tokio::net::TcpStream>;
type ConnectError = <HttpConnector as Service<http::Uri>>::Error;

impl Service<http::Uri> for Announcing {
    type Response = Connected;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Connected, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connect = self.inner.call(uri);
        let own = self.own.clone();
        Box::pin(async move {
            let io = connect.await?;
            // Connected, nothing sent yet: the TLS handshake starts after
            // this returns, so the capture's first record of it comes later.
            let stream = io.inner();
            if let (Ok(local), Ok(server)) = (stream.local_addr(), stream.peer_addr()) {
                own.announce(local.port(), server);
            }
            Ok(io)
        })
    }
}

/// A client for `config` whose connections are announced in `own`.
pub fn client(config: Config, own: &Announced) -> Result<Client, kube::Error> {
    if config.proxy_url.is_some() {
        return Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = config.rustls_https_connector_with_connector(Announcing {
        inner: http,
        own: own.clone(),
    })?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, kube::client::Body>(connector);
    let retry = config
        .default_retry
        .then(|| RetryLayer::new(RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http);
    Ok(Client::new(service, config.default_namespace))
}
