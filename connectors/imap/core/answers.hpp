// SPDX-License-Identifier: Apache-2.0
// What the server answered to a UID SEARCH and to the fetches of a batch,
// checked and held within limits, whatever the server sends. Sans-io: fed the
// responses the connection read, no I/O; unit-tested on their own.
#pragma once

#include "connectors/imap/core/parser.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace crmcap::imap {

// Most UIDs one SEARCH answer may list (16 MB of them): past it, the answer
// is refused rather than held.
inline constexpr std::uint64_t k_max_search_uids = 4'000'000;

// The UIDs a UID SEARCH answered (SEARCH, or ESEARCH ALL), for a folder that
// EXAMINE reported with `uidnext` (0: not reported) and `exists` messages.
class SearchAnswer {
 public:
  SearchAnswer(std::uint32_t uidnext, std::uint32_t exists) : uidnext_(uidnext), exists_(exists) {}

  // Every response read while the command ran: SEARCH and ESEARCH lines,
  // and EXISTS (mail that came meanwhile).
  void add(const Response& response);

  // The UIDs below UIDNEXT, ascending and unique. A UID at or above UIDNEXT
  // is new mail only when EXISTS grew while the command ran: it is left for
  // the next pass, which sees a UIDNEXT above it. The answer is refused, with
  // why, when it cannot be true: more UIDs than the folder holds messages
  // (or than k_max_search_uids), a UID at or above UIDNEXT with no mail come
  // meanwhile, "*" in a list of UIDs. Nothing is expanded before it is
  // counted.
  struct Checked {
    std::vector<std::uint32_t> uids;
    std::string refused;  // empty: `uids` holds the answer
  };
  Checked take();

 private:
  std::uint32_t uidnext_, exists_;
  bool grew_ = false;
  std::vector<std::uint32_t> listed_;  // SEARCH, as sent
  UidSet all_;                         // ESEARCH ALL, merged
  std::string refused_;
};

// Most bytes held for one message's fetched items together (that of the
// largest literal the parser accepts): the rest is dropped and the message
// marked `overflowed`.
inline constexpr std::uint64_t k_max_message_bytes = 64ull << 20;

// The FETCH responses of the batches in flight, merged by UID. Responses of
// several outstanding commands may be read together, so one collector holds
// them all. Only UIDs asked for (expect()) are kept: a response for any other
// is dropped at once. A section sent again replaces the copy held, and a
// message's bytes are capped at k_max_message_bytes.
class FetchedMessages {
 public:
  struct Held {
    FetchItem item;
    std::uint64_t bytes = 0;  // of item.sections' data
    // More than k_max_message_bytes came: its sections are dropped, and the
    // message is to be refused rather than captured from a part of them.
    bool overflowed = false;
  };

  // UIDs a command just sent asks for.
  void expect(const std::vector<std::uint32_t>& uids);
  // A response read: kept when its UID is expected. Returns false when it was
  // dropped (no UID, or not asked for).
  bool add(FetchItem&& item);
  // What is held for `uid`, if anything came.
  const Held* find(std::uint32_t uid) const;
  Held* find(std::uint32_t uid);
  // Takes out what is held for `uid` and stops expecting it.
  std::optional<Held> take(std::uint32_t uid);
  // Drops what is held for `uid` (it stays expected).
  void drop(std::uint32_t uid) { held_.erase(uid); }
  void clear();

 private:
  std::unordered_set<std::uint32_t> expected_;
  std::map<std::uint32_t, Held> held_;
};

}  // namespace crmcap::imap
