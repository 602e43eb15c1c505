//
// peergraph/detail/graph/record_layer.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The records of a graph on the network: the application's record operations, flooding (every new version goes to
// every neighbor but the one it came from, and each node applies and reports each version once), the record frames
// that neighbors send (through the frame dispatch), the synchronisation of every new neighbor connection (the
// messages are record_reconciler's; the records it finds missing go out here, paced by the connection's output),
// record_changed events and the expiry timer. The decisions are graph_records'; the bytes leave through the
// connection writer.
//
#pragma once

#include <peergraph/detail/event_queue.hpp>
#include <peergraph/detail/graph/connection.hpp>
#include <peergraph/detail/graph/context.hpp>
#include <peergraph/detail/graph/frame_dispatch.hpp>
#include <peergraph/detail/graph/record_codec.hpp>
#include <peergraph/detail/graph/record_export.hpp>
#include <peergraph/detail/graph/record_sync.hpp>
#include <peergraph/detail/graph/records.hpp>
#include <peergraph/detail/graph/writer.hpp>
#include <peergraph/detail/pooled_post.hpp>
#include <peergraph/error.hpp>
#include <peergraph/event.hpp>
#include <peergraph/graph_properties.hpp>
#include <peergraph/presence.hpp>
#include <peergraph/record.hpp>
#include <peergraph/wire.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

namespace peergraph::detail {

/// What the record layer tells the registry.
template <class Context>
class record_observer
{
public:
  /// The synchronisation over neighbor connection `c` completed; `first`: it is this node's first, which makes the
  /// node synchronised.
  virtual void synchronized_with(const std::shared_ptr<connection<Context>>& c, bool first) = 0;

  /// A presence record changed (here or elsewhere, or it expired): reported instead of a record_changed event.
  virtual void presence_changed(const record_update& update) = 0;

protected:
  ~record_observer() = default;
};

template <class Context>
class record_layer final : public record_frame_handler<Context>
{
public:
  using connection_type = connection<Context>;
  using connection_ptr = std::shared_ptr<connection_type>;
  using connection_table = std::unordered_map<std::uint64_t, connection_ptr>;

  /// `connections`: the registry's table of established connections, which records are flooded over (its
  /// neighbor connections).
  record_layer(const Context& context, const graph_properties& properties, engine_lifetime& lifetime,
               event_queue<Context>& events, const event_filter& filter, connection_writer<Context>& writer,
               const connection_table& connections, record_observer<Context>& observer)
      : context_(context), lifetime_(lifetime), events_(events), filter_(filter), writer_(writer),
        connections_(connections), observer_(observer), store_(properties.store), graph_(properties.graph),
        peer_(properties.peer), book_({static_cast<std::size_t>(properties.record_size_limit()), properties.max_records,
                                       properties.max_record_bytes},
                                      properties.peer, store_.get(), properties.record_security.get()),
        expiry_(context), max_record_size_(static_cast<std::size_t>(properties.record_size_limit())),
        max_records_(properties.max_records), clock_(properties.clock),
        synchronized_(properties.start == graph_start::create)
  {
  }

  /// Opens the record store, if there is one, and takes what it holds (before the graph runs: nothing is reported
  /// or flooded). A store that says this node synchronised once makes it synchronised now. The store's errors
  /// (invalid_graph, already_exists, record_store_failed), or limit_exceeded when it holds more than the limits.
  expected<void, peer_error> open_store()
  {
    if (!store_)
      return {};
    auto contents = store_->open(graph_, peer_);
    if (!contents)
      return unexpected(contents.error());
    store_open_ = true;
    if (auto loaded = book_.load(std::move(contents->records), now()); !loaded) {
      store_->close();
      store_open_ = false;
      return loaded;
    }
    synchronized_ = synchronized_ || contents->synchronized;
    arm_expiry();
    return {};
  }

  /// Now in peer time: the node's clock (graph_properties::clock) moved by what the node learned from its first
  /// neighbor when it joined. Any thread.
  [[nodiscard]] record_time now() const
  {
    const auto local = clock_ ? clock_() : std::chrono::system_clock::now();
    return std::chrono::time_point_cast<std::chrono::milliseconds>(local) +
           std::chrono::milliseconds(offset_.load(std::memory_order_relaxed));
  }

  /// Whether this node is synchronised: it created the graph, or completed a synchronisation with a neighbor.
  [[nodiscard]] bool synchronized() const noexcept { return synchronized_; }

  /// This node's peer id, the creator of what it adds.
  [[nodiscard]] const peer_id& local_peer() const noexcept { return peer_; }

  // ---- the application's operations (graph_records says what each checks) ------------------------------------

  expected<record_id, peer_error> add(record r)
  {
    if (!synchronized_)
      return unexpected(peer_error(peer_errc::graph_not_ready));
    if (reserved(r.type))
      return unexpected(peer_error(peer_errc::invalid_argument));
    return add_reserved(std::move(r));
  }

  /// add() for a record type the graph keeps for itself (presence_record_type), before or after synchronisation.
  expected<record_id, peer_error> add_reserved(record r)
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
    if (!synchronized_)
      return unexpected(peer_error(peer_errc::graph_not_ready));
    if (reserved(r.type))
      return unexpected(peer_error(peer_errc::invalid_argument));
    return update_reserved(std::move(r));
  }

  /// update() for a record type the graph keeps for itself.
  expected<void, peer_error> update_reserved(record r)
  {
    auto updated = book_.update(std::move(r), now());
    if (!updated)
      return unexpected(updated.error());
    publish(*updated, nullptr);
    return {};
  }

  expected<void, peer_error> remove(const record_id& id)
  {
    if (!synchronized_)
      return unexpected(peer_error(peer_errc::graph_not_ready));
    if (const record* held = book_.table().find(id); held != nullptr && reserved(held->type))
      return unexpected(peer_error(peer_errc::invalid_argument));
    return remove_reserved(id);
  }

  /// remove() for a record type the graph keeps for itself.
  expected<void, peer_error> remove_reserved(const record_id& id)
  {
    auto deleted = book_.remove(id, now());
    if (!deleted)
      return unexpected(deleted.error());
    publish(*deleted, nullptr);
    return {};
  }

  [[nodiscard]] expected<record, peer_error> get(const record_id& id) const
  {
    if (!synchronized_)
      return unexpected(peer_error(peer_errc::graph_not_ready));
    return book_.get(id, now());
  }

  [[nodiscard]] expected<std::vector<record>, peer_error> of_type(const std::optional<data_type>& type) const
  {
    if (!synchronized_)
      return unexpected(peer_error(peer_errc::graph_not_ready));
    if (type && reserved(*type))
      return std::vector<record>{};
    return without_reserved(book_.of_type(type, now()));
  }

  [[nodiscard]] expected<std::vector<record>, peer_error> search(const record_query& query) const
  {
    if (!synchronized_)
      return unexpected(peer_error(peer_errc::graph_not_ready));
    return without_reserved(book_.search(query, now()));
  }

  /// The live records of a type the graph keeps for itself.
  [[nodiscard]] std::vector<record> reserved_records(const data_type& type) const { return book_.of_type(type, now()); }

  /// Whether the graph keeps records of `type` for itself (presence): the application neither writes nor lists them.
  [[nodiscard]] static bool reserved(const data_type& type) noexcept { return type == presence_record_type; }

  /// Writes every record and tombstone this node holds to the export file `path`, replacing it: record_store_failed
  /// when it cannot be written.
  [[nodiscard]] expected<void, peer_error> export_to(const std::filesystem::path& path) const
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out)
      return unexpected(peer_error(peer_errc::record_store_failed));
    return write_record_export(out, graph_, peer_, book_.table());
  }

  /// Takes the versions of the export file `path` as if a neighbor sent them (checked, kept when they supersede what
  /// is held, reported): how many were kept. Errors: invalid_graph (another graph's or peer's file),
  /// record_store_failed (unreadable, or no export file), and apply()'s; the versions before the failing one stay.
  expected<std::size_t, peer_error> import_from(const std::filesystem::path& path)
  {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      return unexpected(peer_error(peer_errc::record_store_failed));
    record_export_reader reader(in, max_record_size_);
    if (auto opened = reader.open(graph_, peer_); !opened)
      return unexpected(opened.error());
    std::size_t kept = 0;
    for (std::size_t read = 0; read <= max_records_; ++read) { // bounded by what fits
      auto next = reader.next();
      if (!next)
        return unexpected(next.error());
      if (!*next)
        return kept;
      auto applied = book_.apply(std::move(**next), now());
      if (!applied)
        return unexpected(applied.error());
      if (*applied) {
        publish(**applied, nullptr);
        ++kept;
      }
    }
    return unexpected(peer_error(peer_errc::limit_exceeded));
  }

  /// The graph closed: the expiry timer stops, synchronisations end.
  void close()
  {
    expiry_.cancel();
    syncs_.clear();
    if (store_ && std::exchange(store_open_, false))
      store_->close();
  }

  // ---- synchronisation of new neighbor connections ------------------------------------------------------------

  /// Neighbor connection `c` was established: its synchronisation starts. The side that connected (`initiator`)
  /// begins; the other waits for the begin.
  void neighbor_established(const connection_ptr& c, bool initiator)
  {
    sync_session& session = syncs_[c->id.value()];
    session.initiator = initiator;
    // Each side's first frame on the connection is its peer time, ahead of any record.
    sync_message clock;
    clock.step = sync_step::clock;
    clock.clock = now();
    auto frame = std::make_shared<std::vector<std::byte>>(sync_frame(clock));
    if (!writer_.send_own_frame(c, std::span<const std::byte>(*frame), frame) || !initiator)
      return;
    session.work = std::make_unique<sync_work>(record_reconciler::random_key());
    queue_reply(session, session.work->reconciler.begin(book_.table(), now()));
    send_sync_output(c);
  }

  /// Connection `c` left the graph: its synchronisation, if any, ends.
  void connection_removed(const connection_type& c) { syncs_.erase(c.id.value()); }

  /// `c` has room for more of its synchronisation's output.
  void output_room(const connection_ptr& c) { send_sync_output(c); }

  /// A complete sync frame from neighbor `from`, answered in turn. A message out of turn or malformed ends the
  /// connection with protocol_error; a synchronisation that makes this node do more work than its records justify
  /// (max_sync_messages messages, or hashing every version sync_work_factor times) ends it with limit_exceeded.
  std::optional<peer_error> on_sync_frame(const connection_ptr& from, std::span<const std::byte> payload) override
  {
    auto it = syncs_.find(from->id.value());
    if (it == syncs_.end())
      return peer_error(peer_errc::protocol_error);
    sync_session& session = it->second;
    auto message = decode_sync_message(payload);
    if (!message)
      return message.error();
    if (message->step == sync_step::clock) {
      if (std::exchange(session.clock_received, true))
        return peer_error(peer_errc::protocol_error); // one per connection
      adopt_time(message->clock);
      return std::nullopt;
    }
    const bool begins = message->step == sync_step::begin;
    if (!session.clock_received || session.phase != sync_phase::awaiting_peer || begins != !session.work ||
        (begins && session.initiator))
      return peer_error(peer_errc::protocol_error); // out of turn, a second begin, or none
    if (++session.messages > max_sync_messages)
      return peer_error(peer_errc::limit_exceeded);
    if (begins)
      session.work = std::make_unique<sync_work>(message->hash_key);
    if (message->step == sync_step::done) {
      finish_sync(from);
      return std::nullopt;
    }
    sync_work& work = *session.work;
    work.wanted.assign(message->wants.begin(), message->wants.end());
    auto answer = work.reconciler.answer(*message, book_.table(), now());
    if (work.reconciler.work() > sync_work_factor * (book_.table().count() + max_sync_items) + sync_work_allowance)
      return peer_error(peer_errc::limit_exceeded);
    work.pushes.assign(std::make_move_iterator(answer.pushes.begin()), std::make_move_iterator(answer.pushes.end()));
    work.cursor.reset();
    queue_reply(session, answer.reply);
    send_sync_output(from);
    return std::nullopt;
  }

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
  /// Reports a change (unless it is silent) and floods the version to every neighbor but `source`.
  void publish(const record_update& update, const connection<Context>* source)
  {
    report(update);
    flood(update.version, source);
    arm_expiry();
  }

  /// Reports a change: a record_changed event, or for a presence record to the observer.
  void report(const record_update& update)
  {
    if (update.silent)
      return;
    if (reserved(update.version.type)) {
      observer_.presence_changed(update);
      return;
    }
    graph_event event{record_changed{update.change, update.version.id, update.version.type}};
    if (!events_.closed() && filter_.matches(event))
      events_.force_push(event);
  }

  /// `listed` without the records of reserved types.
  static expected<std::vector<record>, peer_error> without_reserved(expected<std::vector<record>, peer_error> listed)
  {
    if (listed)
      std::erase_if(*listed, [](const record& r) { return reserved(r.type); });
    return listed;
  }

  /// The record frame of `version`, shared by every connection it goes to; null when it does not encode (a version
  /// this node holds always does: graph_records checked its parts).
  static std::shared_ptr<std::vector<std::byte>> record_frame(const record& version)
  {
    auto frame = std::make_shared<std::vector<std::byte>>();
    frame->reserve(wire::data_frame_header_size + version.size());
    const auto header = wire::encode_record_header(version.type, version.size());
    frame->assign(header.begin(), header.end());
    if (!encode_record_payload(version, *frame))
      return nullptr;
    return frame;
  }

  /// Sends `version` to every established neighbor but `source`, one encoding shared by all.
  void flood(const record& version, const connection<Context>* source)
  {
    std::vector<connection_ptr> targets; // a failed write takes a connection out of the table
    for (const auto& [key, c] : connections_)
      if (c.get() != source && c->kind == connection_kind::neighbor && c->established())
        targets.push_back(c);
    if (targets.empty())
      return; // a node alone encodes nothing
    auto frame = record_frame(version);
    if (!frame)
      return;
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
    for (const record_update& gone : book_.expire(now(), batch))
      report(gone);
    arm_expiry();
  }

  // ---- synchronisation ------------------------------------------------------------------------------------------

  /// Most sync messages one synchronisation may take from the other side.
  static constexpr std::uint32_t max_sync_messages = 4096;
  /// The hashing a synchronisation may cost: this many times the versions held, and an allowance.
  static constexpr std::uint64_t sync_work_factor = 64;
  static constexpr std::uint64_t sync_work_allowance = 1U << 20;
  /// Records one turn sends before it lets other handlers run.
  static constexpr std::size_t sync_records_per_turn = 256;

  enum class sync_phase : std::uint8_t
  {
    awaiting_peer, // this side's message went out: the other side's is next
    answering,     // this side sends the wanted and pushed records, then its reply
  };

  /// What a running synchronisation holds, from the begin on. Its memory is bounded by one message of the other
  /// side (the wants and item lists of a sync frame, at most max_sync_payload_size) and this side's reply.
  struct sync_work
  {
    explicit sync_work(const std::array<std::byte, sync_hash_key_size>& key) : reconciler(key) {}

    record_reconciler reconciler;
    std::deque<record_id> wanted;   // what the other side asked for, sent first
    std::deque<sync_push> pushes;   // what it lacks, by range
    std::optional<sync_key> cursor; // the last version sent of pushes.front()
    std::vector<std::byte> reply;   // the sync frame that follows the records
    bool reply_finishes = false;    // the reply is a done
  };

  /// One neighbor connection's synchronisation, from the connection's start until it finishes (then it is gone, and
  /// a sync frame on that connection is a protocol error).
  struct sync_session
  {
    bool initiator = false;
    bool clock_received = false; // the other side's first frame, its peer time, arrived
    sync_phase phase = sync_phase::awaiting_peer;
    std::uint32_t messages = 0;
    std::unique_ptr<sync_work> work; // from the begin on
  };

  /// The whole sync frame of `message`.
  static std::vector<std::byte> sync_frame(const sync_message& message)
  {
    std::vector<std::byte> payload;
    encode_sync_message(message, payload);
    const auto header = wire::encode_sync_header(payload.size());
    std::vector<std::byte> frame(header.size() + payload.size());
    std::copy(header.begin(), header.end(), frame.begin());
    std::copy(payload.begin(), payload.end(), frame.begin() + static_cast<std::ptrdiff_t>(header.size()));
    return frame;
  }

  /// A neighbor's peer time: a node that joins and is not synchronised yet takes the first one as the graph's time
  /// (within the connection's one-way delay); a node that created the graph, or synchronised, keeps its own.
  void adopt_time(record_time theirs)
  {
    if (synchronized_ || std::exchange(learned_time_, true))
      return;
    const auto local =
        std::chrono::time_point_cast<std::chrono::milliseconds>(clock_ ? clock_() : std::chrono::system_clock::now());
    offset_.store((theirs - local).count(), std::memory_order_relaxed);
  }

  void queue_reply(sync_session& session, const sync_message& message)
  {
    session.work->reply = sync_frame(message);
    session.work->reply_finishes = message.step == sync_step::done;
    session.phase = sync_phase::answering;
  }

  /// The next version of `session`'s pushes to send, or null when they are done.
  const record* next_push(sync_work& work, record_time current)
  {
    while (!work.pushes.empty()) {
      const sync_push& push = work.pushes.front();
      const record* found = nullptr;
      book_.table().for_each_between(work.cursor.value_or(push.lower), !work.cursor, push.upper, [&](const record& r) {
        if (r.expires > current && push.lacks(r))
          found = &r;
        return found == nullptr;
      });
      if (found != nullptr) {
        work.cursor = sync_key(found->last_modified, found->id);
        return found;
      }
      work.pushes.pop_front();
      work.cursor.reset();
    }
    return nullptr;
  }

  /// Sends what `c`'s synchronisation has to send: the wanted records, the pushed ones, then the reply. Paced by the
  /// connection's output (writer::has_room) and a bounded number of records per turn.
  void send_sync_output(const connection_ptr& c)
  {
    auto it = syncs_.find(c->id.value());
    if (it == syncs_.end() || it->second.phase != sync_phase::answering || !c->established())
      return;
    sync_session& session = it->second;
    sync_work& work = *session.work;
    const record_time current = now();
    for (std::size_t sent = 0;; ++sent) {
      if (!writer_.has_room(*c)) {
        c->waiting_output_room = true;
        return;
      }
      if (sent == sync_records_per_turn) {
        post_with(context_, pool_allocator<void>(), [self = lifetime_.keep_alive(this), weak = std::weak_ptr(c)] {
          if (auto conn = weak.lock())
            self->send_sync_output(conn);
        });
        return;
      }
      const record* r = nullptr;
      while (r == nullptr && !work.wanted.empty()) {
        r = book_.table().find(work.wanted.front());
        work.wanted.pop_front();
      }
      if (r == nullptr)
        r = next_push(work, current);
      if (r == nullptr)
        break;
      auto frame = record_frame(*r);
      if (frame && !writer_.send_own_frame(c, std::span<const std::byte>(*frame), frame))
        return; // the connection ended
    }
    auto reply = std::make_shared<std::vector<std::byte>>(std::move(work.reply));
    work.reply.clear();
    if (work.reply_finishes)
      finish_sync(c);
    else
      session.phase = sync_phase::awaiting_peer;
    writer_.send_own_frame(c, std::span<const std::byte>(*reply), reply);
  }

  /// The synchronisation over `c` is complete: this node holds what the other side held, and the other way round.
  void finish_sync(const connection_ptr& c)
  {
    syncs_.erase(c->id.value()); // gives back what the synchronisation held
    const bool first = !std::exchange(synchronized_, true);
    if (first && store_)
      (void)store_->mark_synchronized(); // without it, the next start waits for a synchronisation again
    observer_.synchronized_with(c, first);
  }

  Context context_;
  engine_lifetime& lifetime_;
  event_queue<Context>& events_;
  const event_filter& filter_;
  connection_writer<Context>& writer_;
  const connection_table& connections_;
  record_observer<Context>& observer_;
  std::shared_ptr<record_store> store_; // graph_properties::store
  bool store_open_ = false;
  graph_id graph_;
  peer_id peer_;
  graph_records book_;
  typename graph_io<Context>::timer_type expiry_;
  std::optional<record_time> armed_for_;        // when the expiry timer fires, while it is armed
  std::map<std::uint64_t, sync_session> syncs_; // by connection id, while it synchronises; empty, it holds nothing
  std::size_t max_record_size_;                 // of a record read from an export file
  std::size_t max_records_;
  std::function<std::chrono::system_clock::time_point()> clock_; // graph_properties::clock; empty: the system's
  std::atomic<std::int64_t> offset_{0};                          // peer time minus the clock, in milliseconds
  bool learned_time_ = false;                                    // offset_ came from a neighbor
  bool synchronized_;
};

} // namespace peergraph::detail
