// Shared pieces of the `rectifier` subcommands.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include "rectifier/data.h"
#include "rectifier/io.h"

namespace rectifier::cli {

// Each subcommand registers its options on `app` and returns the function that runs it.
using Runner = std::function<int()>;
Runner add_train(CLI::App& app);
Runner add_eval(CLI::App& app);
Runner add_predict(CLI::App& app);
Runner add_info(CLI::App& app);
Runner add_plot(CLI::App& app);
Runner add_diagnose(CLI::App& app);
Runner add_report(CLI::App& app);
Runner add_experiment(CLI::App& app);

// Loads data for a model file: checks the input shape and applies the model's recorded input scaling.
Dataset& pick_split(DataSplit& data, const std::string& split);
void fit_data_to_model(Dataset& data, const ModelInfo& info, const Model<float>& model);

}  // namespace rectifier::cli
