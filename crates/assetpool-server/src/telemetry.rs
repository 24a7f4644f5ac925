//! Logging to stderr, as human-readable lines or JSON; with the `otlp`
//! feature and `serve --otlp-endpoint`, request spans exported over
//! OpenTelemetry's OTLP/HTTP as well ([`otlp`]).

use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

/// Format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

fn filter(default_level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},sqlx=warn")))
}

/// Installs the global subscriber. `default_level` applies unless `RUST_LOG` says otherwise.
pub fn init(format: LogFormat, default_level: &str) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(default_level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Pretty => builder.compact().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The URL spans are posted to: `endpoint` as given when it names the
/// traces path, else `endpoint` + `/v1/traces` (the OTLP/HTTP rule for a
/// base URL such as `http://collector:4318`).
pub fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim();
    if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    }
}

/// Checks an `--otlp-endpoint` value: an http or https URL with a host.
pub fn parse_otlp_endpoint(value: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(value.trim())
        .map_err(|error| format!("not a URL ({error}); expected e.g. http://127.0.0.1:4318"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected an http:// or https:// URL with a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("give credentials to the collector some other way than in the URL".to_owned());
    }
    Ok(value.trim().to_owned())
}

#[cfg(feature = "otlp")]
pub mod otlp {
    //! Request spans (with their request id, route, status and latency
    //! fields) exported over OTLP/HTTP in protobuf to a collector, by the
    //! OpenTelemetry SDK's batch processor on its own thread. Its requests go
    //! through the server's reqwest client on the server's runtime
    //! (`RuntimeClient`), so no second HTTP stack is linked. Without an
    //! endpoint nothing of this is installed: logging stays as [`super::init`]
    //! sets it up, at no cost per request.

    use super::{filter, traces_url, LogFormat};
    use anyhow::Context as _;
    use async_trait::async_trait;
    use bytes::Bytes;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_http::{HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;
    use std::io::IsTerminal as _;
    use std::time::Duration;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;

    /// Longest wait for the collector's answer to one batch.
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Sends the exporter's requests with the server's reqwest client, as
    /// tasks of the server's runtime (the batch processor's own thread has
    /// no runtime; it waits for the task's answer).
    #[derive(Debug)]
    struct RuntimeClient {
        client: reqwest::Client,
        runtime: tokio::runtime::Handle,
    }

    #[async_trait]
    impl HttpClient for RuntimeClient {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let client = self.client.clone();
            let (parts, body) = request.into_parts();
            let task = self.runtime.spawn(async move {
                let response = client
                    .request(parts.method, parts.uri.to_string())
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            });
            let (status, headers, body) = task.await??;
            let mut response = Response::new(body);
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            Ok(response)
        }
    }

    /// The span exporter's pipeline; [`Telemetry::shutdown`] sends what is
    /// still queued.
    #[derive(Debug)]
    pub struct Telemetry {
        provider: SdkTracerProvider,
    }

    impl Telemetry {
        /// Sends the spans still queued (waiting at most the export
        /// timeout), then stops the exporter.
        pub async fn shutdown(self) {
            let provider = self.provider;
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }

    /// Installs the global subscriber: log lines as [`super::init`] writes
    /// them, plus every span exported to `endpoint` as service
    /// `assetpool`. Call from within the runtime.
    pub fn init(
        format: LogFormat,
        default_level: &str,
        endpoint: &str,
    ) -> anyhow::Result<Telemetry> {
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .context("cannot set up the OTLP exporter's HTTP client")?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(RuntimeClient {
                client,
                runtime: tokio::runtime::Handle::current(),
            })
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(traces_url(endpoint))
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .context("cannot set up the OTLP exporter")?;
        let resource = Resource::builder()
            .with_service_name("assetpool")
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let spans = tracing_opentelemetry::layer().with_tracer(provider.tracer("assetpool"));
        let lines = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal());
        let lines = match format {
            LogFormat::Pretty => lines.compact().boxed(),
            LogFormat::Json => lines.json().boxed(),
        };
        tracing_subscriber::registry()
            .with(filter(default_level))
            .with(lines)
            .with(spans)
            .try_init()
            .context("cannot install the log and span subscriber")?;
        Ok(Telemetry { provider })
    }
}
