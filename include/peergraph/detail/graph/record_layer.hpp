//
// peergraph/detail/graph/record_layer.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The records of a graph on the network: the application's record operations, flooding (every new version goes to
// every neighbor but the one it came from, and each node applies and reports each version once), the record frames
// that neighbors send (through the frame dispatch), record_changed events and the expiry timer. The decisions are
// graph_records'; the bytes leave through the connection writer.
//
#pragma once

#include <peergraph/detail/event_queue.hpp>
#include <peergraph/detail/graph/connection.hpp>
#include <peergraph/detail/graph/context.hpp>
#include <peergraph/detail/graph/frame_dispatch.hpp>
#include <peergraph/detail/graph/record_codec.hpp>
#include <peergraph/detail/graph/records.hpp>
#include <peergraph/detail/graph/writer.hpp>
#include <peergraph/error.hpp>
#include <peergraph/event.hpp>
#include <peergraph/graph_properties.hpp>
#include <peergraph/record.hpp>
#include <peergraph/wire.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

namespace peergraph::detail {

template <class Context>
class record_layer final : public record_frame_handler<Context>
{
public:
  using connection_ptr = std::shared_ptr<connection<Context>>;
  using connection_table = std::unordered_map<std::uint64_t, connection_ptr>;

  /// `connections`: the registry's table of established connections, which records are flooded over (its
  /// neighbor connections).
  record_layer(const Context& context, const graph_properties& properties, engine_lifetime& lifetime,
               event_queue<Context>& events, const event_filter& filter, connection_writer<Context>& writer,
               const connection_table& connections)
      : lifetime_(lifetime), events_(events), filter_(filter), writer_(writer), connections_(connections),
        book_({static_cast<std::size_t>(properties.record_size_limit()), properties.max_records,
               properties.max_record_bytes},
              properties.peer),
        expiry_(context)
  {
  }

  // ---- the application's operations (graph_records says what each checks) ------------------------------------

  expected<record_id, peer_error> add(record r)
  {
    auto added = book_.add(std::move(r), now());
    if (!added)
      return unexpected(added.error());
    const record_id id = added->version.id;
    publish(*added, nullptr);
    return id;
  }

  expected<void, peer_error> update(record r)
  {
    auto updated = book_.update(std::move(r), now());
    if (!updated)
      return unexpected(updated.error());
    publish(*updated, nullptr);
    return {};
  }

  expected<void, peer_error> remove(const record_id& id)
  {
    auto deleted = book_.remove(id, now());
    if (!deleted)
      return unexpected(deleted.error());
    publish(*deleted, nullptr);
    return {};
  }

  [[nodiscard]] expected<record, peer_error> get(const record_id& id) const { return book_.get(id, now()); }

  [[nodiscard]] std::vector<record> of_type(const std::optional<data_type>& type) const
  {
    return book_.of_type(type, now());
  }

  [[nodiscard]] expected<std::vector<record>, peer_error> search(const record_query& query) const
  {
    return book_.search(query, now());
  }

  /// The graph closed: the expiry timer stops.
  void close() { expiry_.cancel(); }

  // ---- record frames from neighbors ------------------------------------------------------------------------------

  /// A complete record frame from neighbor `from`: applied when it brings news, then reported and flooded on. A
  /// malformed or refused record ends the connection with the reason (protocol_error, invalid_record,
  /// invalid_attributes, max_record_size_exceeded, limit_exceeded); the store is unchanged then.
  std::optional<peer_error> on_record_frame(const connection_ptr& from, const data_type& type,
                                            std::span<const std::byte> payload) override
  {
    auto decoded = decode_record_payload(type, payload);
    if (!decoded)
      return decoded.error();
    auto applied = book_.apply(std::move(*decoded), now());
    if (!applied)
      return applied.error();
    if (*applied)
      publish(**applied, from.get());
    return std::nullopt;
  }

private:
  static record_time now() noexcept
  {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  }

  /// Reports a change (unless it is silent) and floods the version to every neighbor but `source`.
  void publish(const record_update& update, const connection<Context>* source)
  {
    if (!update.silent) {
      graph_event event{record_changed{update.change, update.version.id, update.version.type}};
      if (!events_.closed() && filter_.matches(event))
        events_.force_push(event);
    }
    flood(update.version, source);
    arm_expiry();
  }

  /// Sends `version` to every established neighbor but `source`, one encoding shared by all.
  void flood(const record& version, const connection<Context>* source)
  {
    auto frame = std::make_shared<std::vector<std::byte>>();
    frame->reserve(wire::data_frame_header_size + version.size());
    const auto header = wire::encode_record_header(version.type, version.size());
    frame->assign(header.begin(), header.end());
    if (!encode_record_payload(version, *frame))
      return;                            // a version this node holds always encodes: graph_records checked its parts
    std::vector<connection_ptr> targets; // a failed write takes a connection out of the table
    for (const auto& [key, c] : connections_)
      if (c.get() != source && c->kind == connection_kind::neighbor && c->established())
        targets.push_back(c);
    for (const connection_ptr& c : targets)
      writer_.send_own_frame(c, std::span<const std::byte>(*frame), frame);
  }

  /// Arms the expiry timer for the next record or tombstone that expires, or for a while when that is far off (an
  /// expiry may be any time a neighbor names: the wait is bounded, and the timer looks again then).
  void arm_expiry()
  {
    const std::optional<record_time> next = book_.next_expiry();
    if (!next || (armed_for_ && *armed_for_ <= *next))
      return;
    const record_time current = now();
    const std::chrono::milliseconds wait = *next <= current
                                               ? std::chrono::milliseconds(0)
                                               : std::min<std::chrono::milliseconds>(*next - current, max_wait);
    armed_for_ = current + wait;
    expiry_.expires_after(wait);
    expiry_.async_wait([self = lifetime_.keep_alive(this)](const std::error_code& ec) {
      if (!ec)
        self->expire_due();
    });
  }

  /// The longest the expiry timer waits before it looks again.
  static constexpr std::chrono::milliseconds max_wait{std::chrono::hours(1)};

  /// Reports and forgets what expired, a bounded batch per turn, and waits for the next.
  void expire_due()
  {
    armed_for_.reset();
    static constexpr std::size_t batch = 1024;
    for (const record_update& gone : book_.expire(now(), batch)) {
      graph_event event{record_changed{gone.change, gone.version.id, gone.version.type}};
      if (!events_.closed() && filter_.matches(event))
        events_.force_push(event);
    }
    arm_expiry();
  }

  engine_lifetime& lifetime_;
  event_queue<Context>& events_;
  const event_filter& filter_;
  connection_writer<Context>& writer_;
  const connection_table& connections_;
  graph_records book_;
  typename graph_io<Context>::timer_type expiry_;
  std::optional<record_time> armed_for_; // when the expiry timer fires, while it is armed
};

} // namespace peergraph::detail
