//
// peergraph.hpp
// ~~~~~~~~~~~~~
// Umbrella header: every public header of peergraph except <peergraph/psk.hpp> and <peergraph/tls.hpp>, which need
// OpenSSL.
//
#pragma once

#include <peergraph/config.hpp>
#include <peergraph/error.hpp>
#include <peergraph/event.hpp>
#include <peergraph/expected.hpp>
#include <peergraph/graph.hpp>
#include <peergraph/graph_properties.hpp>
#include <peergraph/ids.hpp>
#include <peergraph/membership.hpp>
#include <peergraph/presence.hpp>
#include <peergraph/record.hpp>
#include <peergraph/record_security.hpp>
#include <peergraph/record_store.hpp>
#include <peergraph/send.hpp>
#include <peergraph/transport_security.hpp>
#include <peergraph/use_expected.hpp>
#include <peergraph/wire.hpp>
