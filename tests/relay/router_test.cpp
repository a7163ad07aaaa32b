#include "router.hpp"

#include <gtest/gtest.h>

#include "fakes.hpp"

namespace flagrelay::relay {
namespace {

using testing::Flag;
using testing::Put;

constexpr std::string_view kKey = "sdk-aaaaaaaa-bbbb-cccc-dddd-eeeeeeee1234";

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    config::EnvironmentConfig cfg;
    cfg.name = "prod";
    cfg.sdk_key = config::Secret(std::string(kKey));
    cfg.mobile_key = config::Secret("mob-aaaaaaaa-bbbb-cccc-dddd-eeeeeeee9876");
    env_ = std::make_shared<Environment>(cfg, nullptr, commits_, metrics_.AddEnvironment("prod"));
    router_ = std::make_unique<Router>(std::vector<std::shared_ptr<Environment>>{env_}, metrics_,
                                       "9.9.9");
  }

  HttpResponse Get(std::string_view target, std::string_view auth = kKey,
                   std::string_view if_none_match = {}, std::string_view accept_encoding = {}) {
    HttpRequest request;
    request.method = "GET";
    request.target = target;
    request.authorization = auth;
    request.if_none_match = if_none_match;
    request.accept_encoding = accept_encoding;
    return router_->Handle(request);
  }

  static std::string Header(const HttpResponse& response, std::string_view name) {
    for (const auto& [n, v] : response.headers) {
      if (n == name) return v;
    }
    return {};
  }

  metrics::RelayMetrics metrics_{"test"};
  CommitQueue commits_;
  std::shared_ptr<Environment> env_;
  std::unique_ptr<Router> router_;
};

TEST_F(RouterTest, Credentials) {
  env_->ApplyUpstream(Put({Flag("a", 1)}));
  EXPECT_EQ(Get("/sdk/latest-all").status, 200u);
  EXPECT_EQ(Get("/sdk/latest-all", "api_key " + std::string(kKey)).status, 200u);
  EXPECT_EQ(Get("/sdk/latest-all", "sdk-wrong").status, 401u);
  EXPECT_EQ(Get("/sdk/latest-all", "").status, 401u);
  EXPECT_EQ(Get("/sdk/latest-all", "Bearer " + std::string(kKey)).status, 401u);
  EXPECT_EQ(Get("/all", "sdk-wrong").status, 401u);
  EXPECT_EQ(Get("/status", "").status, 200u) << "operator endpoints need no credential";
}

TEST_F(RouterTest, NoDataYetIs503ForPollingAndASilentStream) {
  EXPECT_EQ(Get("/sdk/latest-all").status, 503u);
  EXPECT_EQ(Get("/readyz").status, 503u);
  const HttpResponse stream = Get("/all");
  EXPECT_EQ(stream.stream_env, env_);
  EXPECT_EQ(stream.stream_kind, StreamKind::kAll);
  EXPECT_EQ(Get("/flags").stream_kind, StreamKind::kFlags);
  env_->ApplyUpstream(Put({}));
  EXPECT_EQ(Get("/readyz").status, 200u);
}

TEST_F(RouterTest, PollingETagsAndGzip) {
  env_->ApplyUpstream(Put({Flag("a", 1)}));
  const HttpResponse first = Get("/sdk/latest-all");
  const std::string etag = Header(first, "ETag");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(first.content_type, "application/json");
  EXPECT_EQ(*first.body, *env_->snapshot()->AllData().Plain());

  EXPECT_EQ(Get("/sdk/latest-all", kKey, etag).status, 304u);
  EXPECT_EQ(Get("/sdk/latest-all", kKey, "\"other\", " + etag).status, 304u);
  EXPECT_EQ(Get("/sdk/latest-all", kKey, "W/" + etag).status, 304u);
  EXPECT_EQ(Get("/sdk/latest-all", kKey, "\"other\"").status, 200u);

  const HttpResponse gz = Get("/sdk/latest-all", kKey, {}, "deflate, gzip;q=0.8");
  EXPECT_EQ(Header(gz, "Content-Encoding"), "gzip");
  EXPECT_NE(Header(gz, "ETag"), etag) << "another representation, another strong ETag";
  EXPECT_EQ(*protocol::GzipDecompress(*gz.body, 1 << 20), *first.body);
  EXPECT_EQ(Get("/sdk/latest-all", kKey, Header(gz, "ETag"), "gzip").status, 304u);
  EXPECT_EQ(Header(Get("/sdk/latest-all", kKey, {}, "gzip;q=0"), "Content-Encoding"), "");

  env_->ApplyUpstream(protocol::PatchMessage{protocol::Kind::kFlags, Flag("a", 2)});
  EXPECT_EQ(Get("/sdk/latest-all", kKey, etag).status, 200u) << "a change changes the ETag";
}

TEST_F(RouterTest, ItemsAndPhpPaths) {
  env_->ApplyUpstream(Put({Flag("a", 1), Flag("b", 1)}));
  env_->ApplyUpstream(protocol::DeleteMessage{protocol::Kind::kFlags, "b", 2});
  EXPECT_EQ(*Get("/sdk/latest-flags/a").body, env_->snapshot()->flags().Find("a")->json);
  EXPECT_EQ(*Get("/sdk/flags/a").body, env_->snapshot()->flags().Find("a")->json);
  EXPECT_EQ(Get("/sdk/flags/b").status, 404u) << "deleted";
  EXPECT_EQ(Get("/sdk/latest-flags/zzz").status, 404u);
  EXPECT_EQ(Get("/sdk/segments/zzz").status, 404u);
  EXPECT_EQ(*Get("/sdk/flags").body, R"({"a":)" + env_->snapshot()->flags().Find("a")->json + "}");
  EXPECT_EQ(*Get("/sdk/latest-segments").body, "{}");
  const std::string etag = Header(Get("/sdk/latest-flags/a"), "ETag");
  EXPECT_EQ(Get("/sdk/latest-flags/a", kKey, etag).status, 304u);
}

TEST_F(RouterTest, UnknownPathsAndMethods) {
  EXPECT_EQ(Get("/nope").status, 404u);
  EXPECT_EQ(Get("/sdk/latest-flags/a/b").status, 404u);
  HttpRequest post;
  post.method = "POST";
  post.target = "/sdk/latest-all";
  post.authorization = kKey;
  EXPECT_EQ(router_->Handle(post).status, 405u);
  const std::string text = metrics_.Serialize();
  EXPECT_NE(
      text.find(
          "flagrelay_http_requests_total{method=\"other\",route=\"unmatched\",status=\"4xx\"} 3"),
      std::string::npos)
      << text;
}

TEST_F(RouterTest, StatusMasksKeysAndReportsTheDataSource) {
  env_->ApplyUpstream(Put({Flag("a", 1)}));
  env_->SetConnectionState(ConnectionState::kValid);
  const std::string body = *Get("/status", "").body;
  EXPECT_EQ(body.find(kKey), std::string::npos) << body;
  EXPECT_EQ(body.find("eeeeeeee9876"), std::string::npos) << "the mobile key is masked too";
  EXPECT_NE(body.find("\"sdkKey\":\"sdk-********-****-****-****-*******e1234\""), std::string::npos)
      << body;
  EXPECT_NE(body.find("\"dataSource\":\"upstream\""), std::string::npos);
  EXPECT_NE(body.find("\"state\":\"VALID\""), std::string::npos);
  EXPECT_NE(body.find("\"status\":\"healthy\""), std::string::npos);
  EXPECT_NE(body.find("\"version\":\"9.9.9\""), std::string::npos);
}

}  // namespace
}  // namespace flagrelay::relay
