// SPDX-License-Identifier: Apache-2.0
// Internal to connectors/imap/core: what to fetch of a message, from its
// BODYSTRUCTURE, and how to put it together again from the parts fetched.
// Whole when it is all text (but for small unread alternatives); else part
// by part: the header, every part's MIME header and the text parts capture
// reads, never an attachment's bytes. Pure functions.
#pragma once

#include "connectors/imap/core/command.hpp"
#include "connectors/imap/core/types.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace crmcap::imap::detail {

// Whether Gmail gave the message this system label (X-GM-LABELS; system
// labels start with a backslash): "\\Draft", "\\Sent".
bool has_gmail_label(const FetchItem& f, std::string_view label);

// Whether a message with this structure comes whole: it holds no attachment
// and no part longer than the cut, and its unread alternatives are small.
// Any other comes part by part (part_by_part), so that no attachment's bytes,
// nor a large unread alternative's, are ever fetched.
bool comes_whole(const BodyStructure& b, std::uint32_t max_part);

// What to fetch of a message that is not fetched whole: its header, then
// every part's MIME header and the parts capture reads, each cut at
// `max_part`. Without a structure (a server that did not send one): the
// header and the first `max_part` octets of the body.
std::vector<FetchAttr> part_by_part(const BodyStructure* b, std::uint32_t max_part);

// The bytes of section `part` (`text`) among those fetched, or null.
const std::string* find_section(const FetchItem& f, const std::string& part, SectionText text);
std::string* find_section(FetchItem& f, const std::string& part, SectionText text);

// Rebuilds the message from its header, the MIME headers of every part and the
// bytes of the parts capture reads, keeping the original boundaries: appends
// the body under `b` to `out`. Attachment parts keep their MIME headers and
// lose their bytes; `partial` is set when anything was cut or left out.
void emit_part(const BodyStructure& b, const FetchItem& f, std::string& out, bool& partial);

}  // namespace crmcap::imap::detail
