//
// peergraph/impl/graph.hpp
// ~~~~~~~~~~~~~~~~~~~~~~~~
// Member bodies of basic_graph: each operation is one async_initiate of one initiation object
// (detail/graph/initiations.hpp). The engine behind them is in detail/graph/ (docs/architecture.md).
//
#pragma once

#include <peergraph/detail/graph/initiations.hpp>
#include <peergraph/detail/graph/registry.hpp>
#include <peergraph/wire.hpp>

#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>

#include <memory>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

namespace peergraph {

template <class Executor>
basic_graph<Executor>::basic_graph(const executor_type& executor, graph_properties properties)
{
  if (auto valid = properties.validate(); !valid)
    throw std::system_error(valid.error().as_error_code(),
                            "peergraph::basic_graph: " + valid.error().cause().message());
  auto state = std::make_shared<detail::graph_registry<Executor>>(executor, std::move(properties));
  if (auto opened = state->open_store(); !opened)
    throw std::system_error(opened.error().as_error_code(), "peergraph::basic_graph: the record store");
  state_ = std::move(state);
}

template <class Executor>
expected<basic_graph<Executor>, peer_error> basic_graph<Executor>::create(const executor_type& executor,
                                                                          graph_properties properties)
{
  if (auto valid = properties.validate(); !valid)
    return unexpected(valid.error());
  basic_graph created;
  auto state = std::make_shared<detail::graph_registry<Executor>>(executor, std::move(properties));
  if (auto opened = state->open_store(); !opened)
    return unexpected(opened.error());
  created.state_ = std::move(state);
  return created;
}

template <class Executor>
basic_graph<Executor>& basic_graph<Executor>::operator=(basic_graph&& other) noexcept
{
  if (this != &other) {
    close_on_context();
    state_ = std::move(other.state_);
  }
  return *this;
}

template <class Executor>
basic_graph<Executor>::~basic_graph()
{
  close_on_context();
}

template <class Executor>
void basic_graph<Executor>::close_on_context() noexcept
{
  if (!state_)
    return;
  const auto context = state_->context();
  asio::dispatch(context, detail::graph_closer<registry_type>(std::move(state_)));
}

template <class Executor>
typename basic_graph<Executor>::executor_type basic_graph<Executor>::get_executor() const noexcept
{
  PEERGRAPH_ASSERT(state_);
  return state_->executor();
}

template <class Executor>
record_time basic_graph<Executor>::peer_time() const
{
  PEERGRAPH_ASSERT(state_);
  return state_->records().now();
}

template <class Executor>
node_id basic_graph<Executor>::local_node() const noexcept
{
  return state_ ? state_->local_node() : node_id();
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::listen(const asio::ip::tcp::endpoint& endpoint, CompletionToken&& token)
{
  using result_type = asio::ip::tcp::endpoint;
  return asio::async_initiate<CompletionToken, void(std::error_code, result_type)>(
      detail::initiate_graph_op<Executor, result_type>(state_), token,
      [](registry_type& registry, asio::ip::tcp::endpoint ep) { return registry.listen(ep); }, endpoint);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::connect(const asio::ip::tcp::endpoint& address, std::optional<peer_id> expected_peer,
                                    CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, connection_id)>(
      detail::initiate_graph_op<Executor, connection_id>(state_), token,
      [](registry_type& registry, asio::ip::tcp::endpoint ep, std::optional<peer_id> peer) {
        return registry.connect(ep, connection_kind::neighbor, std::move(peer));
      },
      address, std::move(expected_peer));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::connect(std::span<const asio::ip::tcp::endpoint> addresses,
                                    std::optional<peer_id> expected_peer, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, connection_id)>(
      detail::initiate_graph_op<Executor, connection_id>(state_), token,
      [](registry_type& registry, std::vector<asio::ip::tcp::endpoint> eps, std::optional<peer_id> peer) {
        return registry.connect_any(std::move(eps), connection_kind::neighbor, std::move(peer));
      },
      std::vector<asio::ip::tcp::endpoint>(addresses.begin(), addresses.end()), std::move(expected_peer));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::connect(std::string_view host, std::string_view service,
                                    std::optional<peer_id> expected_peer, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, connection_id)>(
      detail::initiate_graph_op<Executor, connection_id>(state_), token,
      [](registry_type& registry, std::string name, std::string port, std::optional<peer_id> peer) {
        return registry.connect_host(std::move(name), std::move(port), connection_kind::neighbor, std::move(peer));
      },
      std::string(host), std::string(service), std::move(expected_peer));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::open_direct_connection(const peer_id& peer, const asio::ip::tcp::endpoint& address,
                                                   CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, connection_id)>(
      detail::initiate_graph_op<Executor, connection_id>(state_), token,
      [](registry_type& registry, asio::ip::tcp::endpoint ep, peer_id remote) {
        return registry.connect(ep, connection_kind::direct, std::optional<peer_id>(std::move(remote)));
      },
      address, peer);
}

template <class Executor>
template <class ConstBufferSequence, class CompletionToken>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value &&
           (!std::is_same_v<std::decay_t<CompletionToken>, send_flags>)
auto basic_graph<Executor>::send_data(connection_id id, const data_type& type, const ConstBufferSequence& buffers,
                                      CompletionToken&& token)
{
  return send_data(id, type, buffers, send_flags::none, std::forward<CompletionToken>(token));
}

template <class Executor>
template <class ConstBufferSequence, class CompletionToken>
  requires asio::is_const_buffer_sequence<ConstBufferSequence>::value
auto basic_graph<Executor>::send_data(connection_id id, const data_type& type, const ConstBufferSequence& buffers,
                                      send_flags flags, CompletionToken&& token)
{
  // The frame header travels inside the captured request, so nothing here outlives the call but the payload bytes.
  std::uint64_t payload_size = 0;
  for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it)
    payload_size += asio::const_buffer(*it).size();
  using socket_type = typename registry_type::socket_type;
  const auto refused = [](peer_errc why) {
    detail::send_request request;
    request.refused = make_error_code(why);
    return request;
  };
  const auto make_request = [&] {
    // Partial or urgent bytes would break the framing of the stream.
    if (type.is_nil() || has_flags(flags, send_flags::partial) || has_flags(flags, send_flags::out_of_band))
      return refused(peer_errc::invalid_argument);
    if (state_ && payload_size > state_->max_frame_size())
      return refused(peer_errc::frame_too_large);
    const auto header = wire::encode_data_header(type, payload_size);
    return detail::make_send_request<socket_type>(header, buffers, flags);
  };
  return detail::async_initiate_made<CompletionToken, void(std::error_code)>(
      detail::initiate_send_data<Executor>(state_, id, flags == send_flags::none), token, make_request);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::close_direct_connection(connection_id id, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      detail::initiate_graph_op<Executor, void>(state_), token,
      [](registry_type& registry, connection_id cid) { return registry.close_direct_connection(cid); }, id);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::connections(connection_kinds kinds, CompletionToken&& token)
{
  using result_type = std::vector<connection_info>;
  return asio::async_initiate<CompletionToken, void(std::error_code, result_type)>(
      detail::initiate_graph_op<Executor, result_type>(state_), token,
      [](registry_type& registry, connection_kinds which) -> expected<result_type, peer_error> {
        return registry.connections(which);
      },
      kinds);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::status(CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, graph_status)>(
      detail::initiate_graph_op<Executor, graph_status>(state_), token,
      [](registry_type& registry) -> expected<graph_status, peer_error> { return registry.status(); });
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::next_event(CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, graph_event)>(
      detail::initiate_next_event<Executor>(state_), token);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::set_event_filter(event_filter filter, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      detail::initiate_graph_op<Executor, void>(state_), token,
      [](registry_type& registry, event_filter replacement) -> expected<void, peer_error> {
        registry.set_filter(std::move(replacement));
        return {};
      },
      std::move(filter));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::add_record(record r, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, record_id)>(
      detail::initiate_graph_op<Executor, record_id>(state_), token,
      [](registry_type& registry, record added) { return registry.records().add(std::move(added)); }, std::move(r));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::update_record(record r, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      detail::initiate_graph_op<Executor, void>(state_), token,
      [](registry_type& registry, record changed) { return registry.records().update(std::move(changed)); },
      std::move(r));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::delete_record(const record_id& id, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      detail::initiate_graph_op<Executor, void>(state_), token,
      [](registry_type& registry, record_id deleted) { return registry.records().remove(deleted); }, id);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::get_record(const record_id& id, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, record)>(
      detail::initiate_graph_op<Executor, record>(state_), token,
      [](registry_type& registry, record_id wanted) { return registry.records().get(wanted); }, id);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::records(std::optional<data_type> type, CompletionToken&& token)
{
  using result_type = std::vector<record>;
  return asio::async_initiate<CompletionToken, void(std::error_code, result_type)>(
      detail::initiate_graph_op<Executor, result_type>(state_), token,
      [](registry_type& registry, std::optional<data_type> which) { return registry.records().of_type(which); }, type);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::search_records(record_query query, CompletionToken&& token)
{
  using result_type = std::vector<record>;
  return asio::async_initiate<CompletionToken, void(std::error_code, result_type)>(
      detail::initiate_graph_op<Executor, result_type>(state_), token,
      [](registry_type& registry, record_query criteria) { return registry.records().search(criteria); },
      std::move(query));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::export_records(std::filesystem::path path, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      detail::initiate_graph_op<Executor, void>(state_), token,
      [](registry_type& registry, std::filesystem::path file) -> expected<void, peer_error> {
        if (registry.in_use())
          return unexpected(peer_error(peer_errc::graph_in_use));
        return registry.records().export_to(file);
      },
      std::move(path));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::import_records(std::filesystem::path path, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
      detail::initiate_graph_op<Executor, std::size_t>(state_), token,
      [](registry_type& registry, std::filesystem::path file) -> expected<std::size_t, peer_error> {
        if (registry.in_use())
          return unexpected(peer_error(peer_errc::graph_in_use));
        return registry.records().import_from(file);
      },
      std::move(path));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::set_presence(bool present, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      detail::initiate_graph_op<Executor, void>(state_), token,
      [](registry_type& registry, bool publish) { return registry.presence().set_presence(publish); }, present);
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::set_node_attributes(std::string attributes, CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      detail::initiate_graph_op<Executor, void>(state_), token,
      [](registry_type& registry, std::string text) { return registry.presence().set_attributes(std::move(text)); },
      std::move(attributes));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::nodes(std::optional<peer_id> peer, CompletionToken&& token)
{
  using result_type = std::vector<node_info>;
  return asio::async_initiate<CompletionToken, void(std::error_code, result_type)>(
      detail::initiate_graph_op<Executor, result_type>(state_), token,
      [](registry_type& registry, std::optional<peer_id> of) -> expected<result_type, peer_error> {
        if (!registry.records().synchronized())
          return unexpected(peer_error(peer_errc::graph_not_ready));
        return registry.presence().nodes(of);
      },
      std::move(peer));
}

template <class Executor>
template <class CompletionToken>
auto basic_graph<Executor>::close(CompletionToken&& token)
{
  return asio::async_initiate<CompletionToken, void(std::error_code)>(
      detail::initiate_graph_op<Executor, void>(state_), token,
      [](registry_type& registry) -> expected<void, peer_error> {
        registry.close();
        return {};
      });
}

} // namespace peergraph
