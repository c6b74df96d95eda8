/**
 * The construct layer's one door to the CDK: what the constructs take from cdktf and from the null
 * provider comes through here, so that another flavour of the CDK (CDK Terrain's `cdktn`) is a
 * change of this file alone.
 */
export { Annotations, Aspects, AssetType, DataResource, Fn, TerraformAsset, TerraformOutput, TerraformResource, TerraformStack, TerraformVariable, Token } from 'cdktf';
export type { IResolvable, IResolveContext, IStackSynthesizer, ISynthesisSession } from 'cdktf';
export { provider as nullProvider, resource as nullResource } from '@cdktf/provider-null';
