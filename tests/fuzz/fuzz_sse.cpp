// The upstream stream: bytes from LaunchDarkly (or another relay) through the incremental SSE
// parser, in chunks cut where the input says, then each event through the put/patch/delete
// parser, applied as an environment applies them, and the result encoded back as the relay
// serves it.
//
// Input: one control byte, then the stream. The control byte picks the chunk sizes (1 to 64
// bytes, from a sequence it seeds), so libFuzzer explores chunk boundaries apart from content.
//
// Properties beyond "no crash": the events do not depend on where chunks were cut; what the relay
// encodes (a `put` body, patch and delete frames) parses back to the same items.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "flagrelay/protocol/data.hpp"
#include "flagrelay/protocol/snapshot.hpp"
#include "flagrelay/protocol/sse.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace flagrelay::protocol;

bool SameEvent(const SseEvent& a, const SseEvent& b) {
  return a.name == b.name && a.data == b.data && a.id == b.id;
}

// Feeds `stream` in the chunks the control byte gives; Reset after a bound is exceeded, as the
// upstream client reconnects.
void FeedInChunks(SseParser& parser, std::string_view stream, std::uint8_t control) {
  const std::size_t max_chunk = (control & 0x3F) + 1u;
  std::uint32_t state = control * 2654435761u + static_cast<std::uint32_t>(stream.size());
  while (!stream.empty()) {
    state = state * 1664525u + 1013904223u;
    const std::size_t n = std::min<std::size_t>(stream.size(), 1 + (state >> 16) % max_chunk);
    if (!parser.Feed(stream.substr(0, n))) parser.Reset();
    stream.remove_prefix(n);
  }
}

struct State {
  ItemSet flags, segments;
  ItemSet& Of(Kind kind) { return kind == Kind::kFlags ? flags : segments; }
};

// What Environment::ApplyUpstream does with a message, without the cache and subscribers.
void Apply(State& state, Message message) {
  if (auto* put = std::get_if<PutMessage>(&message)) {
    state.flags = std::move(put->flags);
    state.segments = std::move(put->segments);
  } else if (auto* patch = std::get_if<PatchMessage>(&message)) {
    if (auto updated = state.Of(patch->kind).WithNewer(patch->item)) {
      state.Of(patch->kind) = std::move(*updated);
    }
  } else if (auto* del = std::get_if<DeleteMessage>(&message)) {
    if (auto updated = state.Of(del->kind).WithNewer(MakeTombstone(del->key, del->version))) {
      state.Of(del->kind) = std::move(*updated);
    }
  }
}

// A patch or delete frame, parsed back as an upstream relay's subscriber would.
void CheckChangeFrame(const SharedBytes& frame, Kind kind, const Item& item) {
  std::vector<SseEvent> events;
  SseParser parser([&](SseEvent&& event) { events.push_back(std::move(event)); });
  FUZZ_CHECK(parser.Feed(*frame));
  FUZZ_CHECK(events.size() == 1);
  auto message = ParseStreamEvent(events[0].name, events[0].data);
  FUZZ_CHECK(message.has_value());
  if (item.deleted) {
    const auto* del = std::get_if<DeleteMessage>(&*message);
    FUZZ_CHECK(del != nullptr && del->kind == kind && del->key == item.key &&
               del->version == item.version);
  } else {
    const auto* patch = std::get_if<PatchMessage>(&*message);
    FUZZ_CHECK(patch != nullptr && patch->kind == kind && patch->item->key == item.key &&
               patch->item->version == item.version && patch->item->json == item.json);
  }
}

// The served bodies of `state` parse back to its live items.
void CheckEncodings(const State& state) {
  const auto snapshot =
      std::make_shared<const Snapshot>(state.flags, state.segments, 1, DataSource::kUpstream, 0);
  const SharedBytes& body = snapshot->AllData().Plain();
  auto parsed = ParseAllData(*body);
  FUZZ_CHECK(parsed.has_value());
  for (const Kind kind : {Kind::kFlags, Kind::kSegments}) {
    const ItemSet& served = kind == Kind::kFlags ? parsed->flags : parsed->segments;
    const ItemSet& held = snapshot->items(kind);
    FUZZ_CHECK(served.items().size() == held.live_count());
    for (const ItemPtr& item : held.items()) {
      const Item* back = served.Find(item->key);
      FUZZ_CHECK(item->deleted == (back == nullptr));
      if (back != nullptr) FUZZ_CHECK(back->json == item->json && back->version == item->version);
      if (!item->key.empty()) {  // a change is announced by path, which needs a key
        const ChangeFrames frames = EncodeChange(kind, *item);
        CheckChangeFrame(frames.all, kind, *item);
      }
    }
  }
  // Exact unless keys need escaping, which only adds bytes.
  FUZZ_CHECK(snapshot->served_json_bytes() <= body->size());
  auto inflated = GzipDecompress(*snapshot->AllData().Gzip(), body->size());
  FUZZ_CHECK(inflated.has_value() && *inflated == *body);
  FUZZ_CHECK(!snapshot->AllData().ETag().empty());
  FUZZ_CHECK(!snapshot->PutFrameAll()->empty() && !snapshot->PutFrameFlags()->empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);

  // The same stream whole and in chunks: the parser accepts chunks split at any byte.
  std::vector<SseEvent> whole, chunked;
  SseParser whole_parser([&](SseEvent&& event) { whole.push_back(std::move(event)); });
  SseParser chunked_parser([&](SseEvent&& event) { chunked.push_back(std::move(event)); });
  FUZZ_CHECK(whole_parser.Feed(stream));
  FeedInChunks(chunked_parser, stream, control);
  FUZZ_CHECK(whole.size() == chunked.size());
  for (std::size_t i = 0; i < whole.size(); ++i) FUZZ_CHECK(SameEvent(whole[i], chunked[i]));

  // A tight bound, so that exceeding it and recovering is explored too.
  SseParser bounded([](SseEvent&&) {}, 16 + control);
  FeedInChunks(bounded, stream, control);

  State state;
  for (SseEvent& event : chunked) {
    auto message = ParseStreamEvent(event.name, event.data);
    if (!message) {
      FUZZ_CHECK(!message.error().message.empty());
      continue;
    }
    Apply(state, std::move(*message));
  }
  CheckEncodings(state);
  return 0;
}
