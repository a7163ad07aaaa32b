// AnswerRawRequest: one request read from bytes the way a server connection reads it (the fuzz
// target fuzz_http relies on it), and the base64 the client-side routes decode contexts with.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base64.hpp"
#include "http_server.hpp"

namespace flagrelay::relay {
namespace {

// Echoes what the handler saw, so tests can check the parsed request.
struct Echo {
  std::vector<std::string> seen;
  HttpServer::Handler handler() {
    return [this](const HttpRequest& request) {
      seen.push_back(std::string(request.method) + " " + std::string(request.target) + " [" +
                     std::string(request.body) + "]");
      HttpResponse response;
      response.status = 204;
      return response;
    };
  }
};

constexpr std::size_t kPostLimit = 100;

std::optional<HttpResponse> Answer(std::string_view bytes, Echo& echo,
                                   std::size_t* consumed = nullptr) {
  config::ListenConfig limits;
  limits.max_header_bytes = 1024;
  limits.max_body_bytes = 10;
  return AnswerRawRequest(bytes, limits, kPostLimit, echo.handler(), consumed);
}

TEST(AnswerRawRequest, AnswersOneRequestAndSaysWhereTheNextStarts) {
  Echo echo;
  const std::string first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string bytes = first + "REPORT /b HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
  std::size_t consumed = 0;
  const auto response = Answer(bytes, echo, &consumed);
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 204u);
  EXPECT_EQ(consumed, first.size());
  ASSERT_TRUE(Answer(std::string_view(bytes).substr(consumed), echo, &consumed).has_value());
  EXPECT_EQ(echo.seen, (std::vector<std::string>{"GET /a []", "REPORT /b [{}]"}));
}

TEST(AnswerRawRequest, ConnectionCloseEndsTheConnection) {
  Echo echo;
  std::size_t consumed = 1;
  ASSERT_TRUE(
      Answer("GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n", echo, &consumed)
          .has_value());
  EXPECT_EQ(consumed, 0u);
}

TEST(AnswerRawRequest, RefusesAsTheServerDoes) {
  Echo echo;
  const auto status = [&](std::string_view bytes) {
    const auto response = Answer(bytes, echo);
    return response ? response->status : 0u;
  };
  EXPECT_EQ(status("GET / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"), 413u) << "GET takes no body";
  EXPECT_EQ(status("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 413u);
  EXPECT_EQ(status("REPORT / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"), 413u) << "maxBodyBytes";
  // POSTs (events) have their own, larger limit. A Content-Length over listen.maxBodyBytes was
  // refused before the method was looked at, so events POSTs between the two limits got 413.
  EXPECT_EQ(status("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n12345678901"), 204u);
  EXPECT_EQ(
      status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n12345678901\r\n0\r\n\r\n"),
      204u);
  EXPECT_EQ(
      status(
          "REPORT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n12345678901\r\n0\r\n\r\n"),
      413u);
  EXPECT_EQ(status("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n"), 413u);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n"), 431u);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost x\r\n\r\n"), 400u);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nContent-Length: 5\r\n"), 400u) << "cut short";
  EXPECT_FALSE(Answer("", echo).has_value()) << "no request: closed without an answer";
  EXPECT_EQ(echo.seen.size(), 2u) << "only the two POSTs within their limit reached the handler";
}

TEST(Base64, DecodesBothAlphabetsPaddedOrNot) {
  const std::string bytes = std::string("{\"k\":\"\xfb\xff\"}") + '\0';
  const std::string standard = EncodeBase64(bytes);
  EXPECT_EQ(standard, "eyJrIjoi+/8ifQA=");
  EXPECT_EQ(DecodeBase64(standard), bytes);
  EXPECT_EQ(DecodeBase64("eyJrIjoi-_8ifQA"), bytes);
  EXPECT_EQ(EncodeBase64(""), "");
  EXPECT_EQ(DecodeBase64(""), "");
  EXPECT_EQ(EncodeBase64("ab"), "YWI=");
  EXPECT_EQ(DecodeBase64("YWI"), "ab");
}

TEST(Base64, RefusesWhatNoEncoderWrites) {
  EXPECT_EQ(DecodeBase64("eyJ!"), std::nullopt);
  EXPECT_EQ(DecodeBase64("Y"), std::nullopt) << "one character holds no byte";
  EXPECT_EQ(DecodeBase64("YW=I"), std::nullopt) << "padding only at the end";
}

}  // namespace
}  // namespace flagrelay::relay
