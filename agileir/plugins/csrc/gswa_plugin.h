/*
 * TensorRT IPluginV3 for the fused GSWA kernel (docs/gswa.md, "Plugin node").
 *
 *   name "GroupShiftedWindowAttention", namespace "agileir", version "1"
 *   inputs  0 qkv (B, 2*key_dim + Cv, H, W) FP32|FP16, 1 dw_weight (key_dim, 1, 5, 5) FP32,
 *           2 dw_bias (key_dim,) FP32, 3 bias_table ((2w-1)^2,) FP32
 *   output  0 (B, Cv, H, W), dtype of qkv
 *   fields  window_size, shift_size, key_dim (int32), scale (float32)
 *
 * Written against the TensorRT 10.x / 11.x headers (IPluginV3OneCore / Build / Runtime, IPluginCreatorV3One).
 * TensorRT-RTX 1.x uses the same interfaces (kinds PLUGIN_V3ONE_CORE/BUILD/RUNTIME, PLUGIN CREATOR_V3ONE); its
 * build (-DAGILEIR_TRT_RTX, CMake AGILEIR_TRT_FLAVOUR=rtx) only adds a loader fix in getCreators (gswa_plugin.cpp).
 */
#ifndef AGILEIR_GSWA_PLUGIN_H
#define AGILEIR_GSWA_PLUGIN_H

#include "NvInferRuntime.h"
#include "NvInferVersion.h"

#include <string>
#include <vector>

namespace agileir
{

constexpr char const* kGSWA_PLUGIN_NAME = "GroupShiftedWindowAttention";
constexpr char const* kGSWA_PLUGIN_NAMESPACE = "agileir";
constexpr char const* kGSWA_PLUGIN_VERSION = "1";

struct GswaParams
{
    int32_t window{8};
    int32_t shift{0};
    int32_t keyDim{16};
    float scale{0.25f};
};

#if NV_TENSORRT_MAJOR >= 10 // TensorRT 8.x: gswa_plugin_v2.cpp (IPluginV2DynamicExt + IPluginCreator)
class GswaPlugin final : public nvinfer1::IPluginV3,
                         public nvinfer1::IPluginV3OneCore,
                         public nvinfer1::IPluginV3OneBuild,
                         public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit GswaPlugin(GswaParams const& params);
    GswaPlugin(GswaPlugin const& other);
    GswaPlugin& operator=(GswaPlugin const&) = delete;
    ~GswaPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    char const* getMetadataString() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    void initFieldsToSerialize();

    GswaParams mParams;
    std::string mMetadata;
    std::vector<nvinfer1::PluginField> mDataToSerialize;
    nvinfer1::PluginFieldCollection mFCToSerialize{};
};

class GswaPluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    GswaPluginCreator();
    ~GswaPluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFC{};
};

#endif // NV_TENSORRT_MAJOR >= 10

//! Checks window / shift / key_dim / scale; on failure writes the reason to *why and returns false.
bool validateParams(GswaParams const& p, std::string* why);

} // namespace agileir

#endif // AGILEIR_GSWA_PLUGIN_H
