// Typed reads of config.json keys with one-line errors naming the file and key (io/config.cpp and the
// families' parse functions in model/arch/).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace sq {

// A required positive integer.
int64_t get_int(const nlohmann::json& j, const std::string& file, const char* key);
// Optional keys: dflt when absent or null; wrong types are errors.
int64_t get_int_or(const nlohmann::json& j, const std::string& file, const char* key, int64_t dflt);
double get_num_or(const nlohmann::json& j, const std::string& file, const char* key, double dflt);
bool get_bool_or(const nlohmann::json& j, const std::string& file, const char* key, bool dflt);

}  // namespace sq
