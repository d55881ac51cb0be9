//! OpenTelemetry traces (`[traces]`, off unless `otlp_endpoint` is set): a
//! server span per chat request (continuing the client's W3C `traceparent`
//! when it sent one), a client span per upstream attempt and an internal
//! span per policy decision, exported in batches over OTLP/HTTP (JSON) by
//! the OpenTelemetry SDK, off the request path. Each attempt's span id is
//! made when the attempt starts, so the `traceparent` the provider gets
//! names that attempt; the span itself is recorded when the attempt ends
//! (with its real start and end), so no live span crosses the request's
//! futures. Attributes carry config names, ids, statuses and counts, never
//! a key or a body.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Full};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, Sampler, SdkTracer, SdkTracerProvider,
};

use crate::TelemetryError;

/// The exporter's HTTP client: hyper with rustls, its requests run on the
/// gateway's runtime (the SDK's batch thread only waits for them).
#[derive(Debug, Clone)]
struct Exporting {
    client: crate::webhooks::HttpClient,
    runtime: tokio::runtime::Handle,
}

type HttpError = Box<dyn std::error::Error + Send + Sync>;

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Exporting {
    async fn send_bytes(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = tokio::time::timeout(Duration::from_secs(10), client.request(request.map(Full::new)))
                .await
                .map_err(|_| HttpError::from("the collector did not answer within 10 s"))??;
            let (head, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            if !head.status.is_success() {
                return Err(HttpError::from(format!("the collector answered {}", head.status)));
            }
            Ok(http::Response::from_parts(head, body))
        });
        sent.await?
    }
}

/// The tracer of one gateway.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    ids: RandomIdGenerator,
}

/// A request's trace: its span's context, for the child spans.
#[derive(Clone)]
pub struct RequestTrace {
    traces: Arc<Traces>,
    cx: Context,
}

/// An attempt's span id, made before the attempt starts.
#[derive(Clone, Copy)]
pub struct AttemptSpan {
    id: SpanId,
    started: SystemTime,
}

impl Traces {
    /// The tracer `[traces]` asks for; `None` when traces are off.
    /// `tls`: the client TLS config for an `https` collector.
    pub fn start(
        config: &switchyard_config::TracesSection,
        tls: rustls::ClientConfig,
    ) -> Result<Option<Arc<Traces>>, TelemetryError> {
        let Some(endpoint) = &config.otlp_endpoint else { return Ok(None) };
        let failed = |reason: String| TelemetryError::Traces(reason);
        let client = crate::webhooks::client(tls);
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| failed(e.to_string()))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(Exporting { client, runtime })
            .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let batches = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(config.export_every_ms))
            .with_max_queue_size(8192)
            .build();
        let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batches).build();
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("switchyard");
        Ok(Some(Arc::new(Traces { provider, tracer, ids: RandomIdGenerator::default() })))
    }

    /// Sends what is batched (at shutdown).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }

    /// Starts the span of a chat request, under the client's `traceparent` if any.
    pub fn request(self: &Arc<Self>, headers: &HeaderMap, name: String, attributes: Vec<KeyValue>) -> RequestTrace {
        let parent = TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        RequestTrace { traces: self.clone(), cx: parent.with_span(span) }
    }
}

impl RequestTrace {
    fn sampled(&self) -> bool {
        self.cx.span().span_context().is_sampled()
    }

    /// A new attempt's span id, and the `traceparent` the provider gets for it.
    pub fn attempt(&self) -> (AttemptSpan, Option<HeaderValue>) {
        let span = AttemptSpan { id: self.traces.ids.new_span_id(), started: SystemTime::now() };
        let parent = self.cx.span().span_context().clone();
        let flags = if self.sampled() { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let context = SpanContext::new(parent.trace_id(), span.id, flags, false, parent.trace_state().clone());
        let mut headers = HeaderMap::new();
        let cx = Context::new().with_remote_span_context(context);
        TraceContextPropagator::new().inject_context(&cx, &mut opentelemetry_http::HeaderInjector(&mut headers));
        (span, headers.remove("traceparent"))
    }

    /// Records an attempt's span, now that it ended.
    pub fn attempt_ended(&self, span: AttemptSpan, target: &str, outcome: &'static str, status: Option<u16>) {
        if !self.sampled() {
            return;
        }
        let mut attributes =
            vec![KeyValue::new("switchyard.target", target.to_owned()), KeyValue::new("switchyard.outcome", outcome)];
        if let Some(status) = status {
            attributes.push(KeyValue::new("http.response.status_code", i64::from(status)));
        }
        let mut builder = self
            .traces
            .tracer
            .span_builder(format!("attempt {target}"))
            .with_kind(SpanKind::Client)
            .with_start_time(span.started)
            .with_end_time(SystemTime::now())
            .with_attributes(attributes);
        builder.span_id = Some(span.id);
        if outcome != "success" {
            builder.status = Status::error(outcome);
        }
        let _ = builder.start_with_context(&self.traces.tracer, &self.cx);
    }

    /// Records a policy decision's span (`hook` answered by `by`) that began at `started`.
    pub fn decision(&self, hook: &'static str, by: &str, started: SystemTime, what: String) {
        if !self.sampled() {
            return;
        }
        let builder = self
            .traces
            .tracer
            .span_builder(format!("policy {hook}"))
            .with_kind(SpanKind::Internal)
            .with_start_time(started)
            .with_end_time(SystemTime::now())
            .with_attributes([
                KeyValue::new("switchyard.policy", by.to_owned()),
                KeyValue::new("switchyard.decision", what),
            ]);
        let _ = builder.start_with_context(&self.traces.tracer, &self.cx);
    }

    /// Ends the request's span with how it ended.
    pub fn end(&self, status: u16, attributes: Vec<KeyValue>) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status)));
        span.set_attributes(attributes);
        if status >= 500 {
            span.set_status(Status::error(format!("answered {status}")));
        }
        span.end();
    }
}
