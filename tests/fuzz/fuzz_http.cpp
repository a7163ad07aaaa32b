// Requests from SDKs and browsers as raw bytes: parsed by the server's own request reading (Beast,
// with the server's limits and checks) and answered by a Router serving two environments with
// data, one of them in secure mode, with the events relay accepting (never sending) events.
// Pipelined requests are answered one after the other, as a keep-alive connection would.
//
// Properties beyond "no crash": every answer has a valid status and a JSON body is JSON (gzipped
// or not); a stream request gives a stream and nothing else; a client stream's first update is a
// `put`.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>

#include "client_stream.hpp"
#include "commit_queue.hpp"
#include "environment.hpp"
#include "events.hpp"
#include "flagrelay/protocol/data.hpp"
#include "flagrelay/protocol/snapshot.hpp"
#include "fuzz_check.hpp"
#include "http_server.hpp"
#include "router.hpp"

namespace {

using namespace flagrelay;

constexpr std::string_view kProdData = R"({"flags":{
 "new-checkout":{"key":"new-checkout","version":4,"on":true,"salt":"c2f4",
  "targets":[{"values":["qa-user"],"variation":0}],
  "rules":[{"id":"beta","clauses":[{"contextKind":"user","attribute":"groups","op":"in",
            "values":["beta"]}],"variation":0}],
  "fallthrough":{"rollout":{"variations":[{"variation":0,"weight":20000},
                                          {"variation":1,"weight":80000}]}},
  "offVariation":1,"variations":[true,false],
  "clientSideAvailability":{"usingMobileKey":true,"usingEnvironmentId":true}},
 "banner":{"key":"banner","version":2,"on":true,"fallthrough":{"variation":0},
  "variations":["Welcome","Hello"],"clientSide":true,
  "prerequisites":[{"key":"new-checkout","variation":0}],"offVariation":1},
 "server-only":{"key":"server-only","version":1,"on":false,"offVariation":0,"variations":[1,2],
  "clientSideAvailability":{"usingMobileKey":false,"usingEnvironmentId":false}}},
 "segments":{"staff":{"key":"staff","version":3,"included":["qa-user"],
  "rules":[{"clauses":[{"attribute":"email","op":"endsWith","values":["@example.com"]}]}]}}})";

constexpr std::string_view kStagingData = R"({"flags":{
 "dark-mode":{"key":"dark-mode","version":9,"on":true,
  "rules":[{"clauses":[{"attribute":"","op":"segmentMatch","values":["staff"]}],"variation":1}],
  "fallthrough":{"variation":0},"variations":[false,true],"clientSide":true}},
 "segments":{"staff":{"key":"staff","version":1,"includedContexts":[{"contextKind":"org",
  "values":["acme"]}]}}})";

config::EnvironmentConfig EnvConfig(std::string name, std::string sdk_key, std::string mobile_key,
                                    std::string env_id, bool secure) {
  config::EnvironmentConfig c;
  c.name = std::move(name);
  c.sdk_key = config::Secret(std::move(sdk_key));
  c.mobile_key = config::Secret(std::move(mobile_key));
  c.env_id = std::move(env_id);
  c.secure_mode = secure;
  if (secure) {
    c.allowed_origins = {"https://app.example.com", "https://admin.example.com"};
    c.allowed_headers = {"X-Custom"};
  }
  return c;
}

// Built once: requests do not change what an answer depends on. Streams are not subscribed
// here; events are split and queued by an events relay that is never started, so nothing is
// sent and what is queued only grows to the queue bounds (kept small), after which events are
// shed, with the same 202. Building all this per input would cost 25 times the request itself.
struct Relay {
  Relay() {
    prod = std::make_shared<relay::Environment>(
        EnvConfig("prod", "sdk-11111111-2222-3333-4444-555555555555",
                  "mob-11111111-2222-3333-4444-555555555555", "0123456789abcdef01234567", false),
        nullptr, commits, metrics.AddEnvironment("prod"));
    staging = std::make_shared<relay::Environment>(
        EnvConfig("staging", "sdk-66666666-7777-8888-9999-000000000000",
                  "mob-66666666-7777-8888-9999-000000000000", "76543210fedcba9876543210", true),
        nullptr, commits, metrics.AddEnvironment("staging"));
    for (auto [env, json] : {std::pair{prod.get(), kProdData}, {staging.get(), kStagingData}}) {
      auto data = protocol::ParseAllData(json);
      FUZZ_CHECK(data.has_value());
      env->ApplyUpstream(std::move(*data));
      FUZZ_CHECK(env->snapshot() != nullptr);
    }
    upstream.events_uri = "http://127.0.0.1:9";  // never contacted
    events_config.max_queue_bytes = 1 << 20;
    // Small limits (the smallest the config allows for headers), so that inputs of a few KiB
    // reach every refusal; POSTs keep a larger limit than other requests, as by default.
    listen.max_header_bytes = 1024;
    listen.max_body_bytes = 2048;
    events_config.max_body_bytes = 4096;
    // No Outbound: it is only used to send.
    events = std::make_unique<relay::EventsRelay>(
        events_config, upstream, nullptr, "fuzz",
        std::vector<relay::EventsRelay::Environment>{{prod->config(), &prod->metrics()},
                                                     {staging->config(), &staging->metrics()}});
    router = std::make_unique<relay::Router>(
        std::vector<std::shared_ptr<relay::Environment>>{prod, staging}, metrics, "fuzz",
        config::ReadinessConfig{}, events.get());
    handler = [this](const relay::HttpRequest& request) { return router->Handle(request); };
  }

  metrics::RelayMetrics metrics{"fuzz"};
  relay::CommitQueue commits;
  std::shared_ptr<relay::Environment> prod, staging;
  config::ListenConfig listen;
  config::EventsConfig events_config;
  config::UpstreamConfig upstream;
  std::unique_ptr<relay::EventsRelay> events;
  std::unique_ptr<relay::Router> router;
  relay::HttpServer::Handler handler;
};

Relay& Shared() {
  static Relay* relay = new Relay();  // never destroyed: libFuzzer exits without unwinding
  return *relay;
}

std::string_view Header(const relay::HttpResponse& response, std::string_view name) {
  for (const auto& [n, v] : response.headers) {
    if (n == name) return v;
  }
  return {};
}

// A JSON body is JSON, once un-gzipped if it is gzipped.
void CheckBody(const relay::HttpResponse& response) {
  if (!response.body || !response.content_type.starts_with("application/json")) return;
  std::string_view body = *response.body;
  std::optional<std::string> inflated;
  if (Header(response, "Content-Encoding") == "gzip") {
    inflated = protocol::GzipDecompress(body, 64 << 20);
    FUZZ_CHECK(inflated.has_value());
    body = *inflated;
  }
  boost::system::error_code ec;
  (void)boost::json::parse(boost::json::string_view(body.data(), body.size()), ec);
  FUZZ_CHECK(!ec);
}

void CheckResponse(const relay::HttpResponse& response, relay::Environment* prod,
                   relay::Environment* staging) {
  FUZZ_CHECK(response.status >= 100 && response.status <= 599);
  CheckBody(response);
  if (response.stream_env == nullptr) return;
  FUZZ_CHECK(response.stream_env.get() == prod || response.stream_env.get() == staging);
  FUZZ_CHECK(response.status == 200 && !response.body);
  if (response.client_stream) {
    const auto frames = response.client_stream->Update(response.stream_env->EvalData());
    FUZZ_CHECK(!frames.empty() && frames.front()->starts_with("event: put\n"));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Relay& shared = Shared();
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  while (!bytes.empty()) {
    std::size_t consumed = 0;
    const auto response = relay::AnswerRawRequest(
        bytes, shared.listen, shared.events_config.max_body_bytes, shared.handler, &consumed);
    if (!response) break;
    CheckResponse(*response, shared.prod.get(), shared.staging.get());
    FUZZ_CHECK(consumed <= bytes.size());
    if (consumed == 0) break;
    bytes.remove_prefix(consumed);
  }
  return 0;
}
