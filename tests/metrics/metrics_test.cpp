#include "flagrelay/metrics/metrics.hpp"

#include <gtest/gtest.h>

namespace flagrelay::metrics {
namespace {

TEST(RelayMetrics, SerializesResolvedSeries) {
  RelayMetrics metrics("1.2.3");
  const EnvironmentMetrics& env = metrics.AddEnvironment("prod");
  env.streams[static_cast<std::size_t>(SdkKind::kServer)]->Increment();
  env.Updates(UpdateKind::kPatch, UpdateResult::kStale).Increment();
  env.SetDataSource(DataSourceLabel::kCache);
  env.cache_loads("loaded").Increment();
  metrics.HttpRequests("/sdk/latest-all", "GET", "2xx").Increment(3);
  int hooks = 0;
  metrics.OnScrape([&] { ++hooks; });

  const std::string text = metrics.Serialize();
  EXPECT_EQ(hooks, 1);
  EXPECT_NE(text.find("flagrelay_build_info{version=\"1.2.3\"} 1"), std::string::npos);
  EXPECT_NE(text.find("flagrelay_sdk_streams{env=\"prod\",sdk=\"server\"} 1"), std::string::npos);
  EXPECT_NE(text.find("flagrelay_updates_total{env=\"prod\",kind=\"patch\",result=\"stale\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("flagrelay_data_source{env=\"prod\",source=\"cache\"} 1"), std::string::npos);
  EXPECT_NE(text.find("flagrelay_data_source{env=\"prod\",source=\"none\"} 0"), std::string::npos);
  EXPECT_NE(text.find("flagrelay_cache_loads_total{env=\"prod\",outcome=\"loaded\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("flagrelay_http_requests_total{method=\"GET\",route=\"/sdk/"
                      "latest-all\",status=\"2xx\"} 3"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE flagrelay_cache_commit_duration_seconds histogram"),
            std::string::npos);
}

}  // namespace
TEST(RelayMetrics, RetiredEnvironmentsAreHiddenAndComeBackReset) {
  RelayMetrics metrics("1.2.3");
  const EnvironmentMetrics& prod = metrics.AddEnvironment("prod");
  metrics.AddEnvironment("staging");
  prod.events_received->Increment(7);
  prod.SetDataSource(DataSourceLabel::kUpstream);
  metrics.RetireEnvironment("prod");
  std::string text = metrics.Serialize();
  EXPECT_EQ(text.find("env=\"prod\""), std::string::npos) << text;
  EXPECT_NE(text.find("flagrelay_events_received_total{env=\"staging\"} 0"), std::string::npos);
  prod.events_received->Increment();  // still safe to use while hidden

  const EnvironmentMetrics& again = metrics.AddEnvironment("prod");
  EXPECT_EQ(&again, &prod);
  text = metrics.Serialize();
  EXPECT_NE(text.find("flagrelay_events_received_total{env=\"prod\"} 8"), std::string::npos);
  EXPECT_NE(text.find("flagrelay_data_source{env=\"prod\",source=\"none\"} 1"), std::string::npos);
  EXPECT_NE(text.find("flagrelay_data_source{env=\"prod\",source=\"upstream\"} 0"),
            std::string::npos);
}

}  // namespace flagrelay::metrics
