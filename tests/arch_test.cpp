// The architecture text: good texts, canonical round trips, presets, and errors that point at the position.
#include <gtest/gtest.h>

#include "rectifier/arch.h"
#include "rectifier/error.h"
#include "rectifier/model.h"

namespace rectifier {

static std::string error_of(const std::string& text, ArchContext ctx = {}) {
  try {
    parse_arch(text, ctx);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Arch, ParsesLayersAndRoundTrips) {
  const std::string t = "conv(16,5,pad=2) relu maxpool(2) conv(32,5,pad=2) relu maxpool(2) flatten dense(128) relu dense(10)";
  auto l = parse_arch(t, {});
  ASSERT_EQ(l.size(), 10u);
  EXPECT_EQ(l[0].kind, LayerKind::conv);
  EXPECT_EQ(l[0].units, 16);
  EXPECT_EQ(l[0].kernel, 5);
  EXPECT_EQ(l[0].pad, 2);
  EXPECT_EQ(l[0].stride, 1);
  EXPECT_EQ(l[2].stride, 2);
  EXPECT_EQ(arch_text(l), t);
  const std::string u = "conv(8,3,stride=2,pad=1) batchnorm leaky_relu(0.1) avgpool(3,stride=2) gap flatten dropout(0.25) "
                        "dense(10) relu(prime0=1) prelu elu(0.5) softplus(2) selu gelu silu relu6 mish sigmoid tanh identity";
  EXPECT_EQ(arch_text(parse_arch(u, {})), u);
  EXPECT_EQ(arch_text(parse_arch("Dense(4), ReLU ,linear(2) swish", {})), "dense(4) relu dense(2) silu");
  EXPECT_EQ(arch_text(parse_arch("conv(out=4, kernel=3, pad=1)", {})), "conv(4,3,pad=1)");
}

TEST(Arch, WidthsFormAndPresets) {
  ArchContext ctx;
  ctx.input = {1, 28, 28};
  ctx.classes = 10;
  ctx.act = *parse_activation("tanh");
  EXPECT_EQ(arch_text(parse_arch("784-256-128-10", ctx)), "dense(256) tanh dense(128) tanh dense(10)");
  ctx.dropout = 0.5;
  EXPECT_EQ(arch_text(parse_arch("784-64-10", ctx)), "dense(64) tanh dropout(0.5) dense(10)");
  ctx.dropout = 0;
  ctx.act = *parse_activation("relu");
  EXPECT_EQ(arch_text(parse_arch("mlp", ctx)), "dense(256) relu dense(128) relu dense(10)");
  EXPECT_EQ(arch_text(parse_arch("cnn", ctx)),
            "conv(16,5,pad=2) relu maxpool(2) conv(32,5,pad=2) relu maxpool(2) flatten dense(128) relu dense(10)");
  Model<float> lenet(parse_arch("lenet5", ctx), ctx.input);
  EXPECT_EQ(lenet.output_shape(), (Shape{10}));
  ctx.input = {2};
  ctx.classes = 3;
  EXPECT_EQ(arch_text(parse_arch("mlp", ctx)), "dense(64) relu dense(64) relu dense(3)");
  EXPECT_NE(error_of("cnn", ctx).find("needs image input"), std::string::npos);
}

TEST(Arch, ErrorsPointAtThePosition) {
  struct Case { const char* text; const char* expect; };
  for (const auto& c : {Case{"conv(16,5 relu", "position 11: expected ',' or ')'"},
                        Case{"dense(128) relu dens(10)", "position 17: expected a layer"},
                        Case{"dense()", "position 6: expected dense(...) with units"},
                        Case{"dense(12.5)", "position 7: expected units as a whole number"},
                        Case{"conv(4,3,strde=2)", "position 10: expected one of out, kernel, stride, pad"},
                        Case{"dropout(1.5)", "position 9: expected a dropout probability"},
                        Case{"relu(", "position 6: expected a number"},
                        Case{"dense(4)relu", "position 9: expected a space between layers"},
                        Case{"flatten(2)", "position 8: expected flatten without arguments"},
                        Case{"", "position 1: expected a layer"},
                        Case{"maxpool(2,2,2)", "position 13: expected at most 2 arguments"},
                        Case{"maxpool(16)", "position 9: expected a max-pooling window of at most 15"}}) {
    const std::string e = error_of(c.text);
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.text << " -> " << e;
    EXPECT_NE(e.find(std::string("'") + c.text + "'"), std::string::npos) << e;
  }
  ArchContext ctx;
  ctx.input = {2};
  EXPECT_NE(error_of("784-10", ctx).find("input width 784 does not match the data's 2 inputs"), std::string::npos);
  EXPECT_NE(error_of("784--10", ctx).find("position 5: expected a width"), std::string::npos);
}

TEST(Arch, ShapeMismatchesNameTheLayerAndBothShapes) {
  auto build = [](const std::string& t, const Shape& in) -> std::string {
    try {
      Model<float> m(parse_arch(t, {}), in);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(build("dense(10) conv(4,3)", {784}).find("layer 1 conv(4,3): input shape [10] is not an image"), std::string::npos);
  EXPECT_NE(build("conv(4,7)", {1, 5, 5}).find("layer 0 conv(4,7): input shape [1, 5, 5] is smaller than the kernel 7x7"),
            std::string::npos);
  EXPECT_NE(build("maxpool(2) maxpool(2) maxpool(2)", {1, 4, 4}).find("layer 2 maxpool(2): input shape [1, 1, 1]"),
            std::string::npos);
}

}  // namespace rectifier
